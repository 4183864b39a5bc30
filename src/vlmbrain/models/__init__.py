"""Model readouts: the :class:`Readout` interface, Hugging Face families, METER, and the registry.

>>> from vlmbrain.models import load_readout, list_models, register_model  # doctest: +SKIP

The registry and the HF readouts are imported lazily (they pull in torch and transformers),
so ``import vlmbrain.models.base`` stays cheap.
"""

from vlmbrain.models.base import NEURON_COLUMNS, POOLINGS, SITES, Readout, make_neuron_table

__all__ = [
    "NEURON_COLUMNS",
    "POOLINGS",
    "SITES",
    "Readout",
    "make_neuron_table",
    "load_readout",
    "list_models",
    "register_model",
    "HFReadout",
    "load_hf_readout",
]

_LAZY = {
    "load_readout": "vlmbrain.models.registry",
    "list_models": "vlmbrain.models.registry",
    "register_model": "vlmbrain.models.registry",
    "HFReadout": "vlmbrain.models.hf",
    "load_hf_readout": "vlmbrain.models.hf",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vlmbrain.models' has no attribute {name!r}")
