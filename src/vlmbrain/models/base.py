"""The one readout interface every model family implements.

A *readout* turns a batch of stimulus samples (frames and/or captions) into artificial-neuron
(AN) values: per branch a ``(batch, n_neurons)`` float32 array whose columns are described,
in order, by :meth:`Readout.neuron_table`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Columns of every neuron table, in this order.
NEURON_COLUMNS = ("model", "branch", "layer", "module", "head", "unit", "group")

#: AN sites a readout may offer (docs/method.md §2.2).
SITES = ("head-unit", "qk", "mlp", "hidden")

#: Token pooling modes (docs/method.md §2.3).
POOLINGS = ("mean", "cls", "patches")


def make_neuron_table(rows: Sequence[dict]) -> pd.DataFrame:
    """Build a neuron table with the canonical columns and dtypes from row dicts."""
    table = pd.DataFrame(list(rows), columns=list(NEURON_COLUMNS))
    if "group" in table and table["group"].isna().any():
        table["group"] = (
            table["branch"].astype(str) + "/L" + table["layer"].astype(str) + "/" + table["module"].astype(str)
        )
    return table.astype(
        {"model": str, "branch": str, "layer": int, "module": str, "head": int, "unit": int, "group": str}
    )


def state_dict_hash(model) -> str:
    """SHA-256 (16 hex digits) over every state_dict entry of a torch module: name, dtype, shape, bytes."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{key}|{t.dtype}|{tuple(tensor.shape)}".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class Readout(abc.ABC):
    """Per-neuron readout of one model.

    Attributes
    ----------
    name : str
        Registry name or path of the model, e.g. ``"clip-vit-b16"``.
    branches : tuple of str
        Branch names, e.g. ``("vision", "text")`` for CLIP, ``("image", "text")`` for METER.
    modalities : dict of str to str
        For each branch the input it needs: ``"image"`` or ``"text"``. A branch of a
        cross-modal model (METER) needs both and is marked ``"image+text"``.
    """

    name: str
    branches: tuple[str, ...]
    modalities: dict[str, str]
    #: whether the weights were trained: True only when something says so (a registry alias's
    #: known checkpoint, a hub model, a trainer's output, ``model.options.trained``), False for
    #: random weights, None ("unknown") when nothing says either (:func:`vlmbrain.models.hf.trained_evidence`)
    trained: bool | None = None
    #: what ``trained`` was decided from, in words (shown in the report)
    trained_evidence: str = ""

    @abc.abstractmethod
    def neuron_table(self) -> pd.DataFrame:
        """One row per AN, ordered as the concatenated columns of :meth:`readout`, branch by branch."""

    @abc.abstractmethod
    def readout(
        self,
        images: list[list[np.ndarray]] | None,
        captions: list[str] | None,
    ) -> dict[str, np.ndarray]:
        """Read out one batch.

        Parameters
        ----------
        images : list of list of ndarray (H, W, 3) uint8, or None
            Per sample, one or more frames; the readouts of a sample's frames are averaged.
        captions : list of str, or None
            Per sample, its caption (``""`` for none).

        Returns
        -------
        dict of str to ndarray of shape (batch, n_neurons_branch), float32
        """

    @abc.abstractmethod
    def weights_hash(self) -> str:
        """A stable hash of the weights (used as a cache key)."""

    @property
    def streams(self) -> dict[str, str]:
        """For each branch the input it *encodes*: ``"image"`` or ``"text"``.

        A single-modality branch encodes what it reads; a cross-modal model whose branches read
        both inputs (METER) overrides this with the stream each branch belongs to.
        """
        out = {}
        for b in self.branches:
            m = self.modalities[b]
            if m not in ("image", "text"):
                raise NotImplementedError(f"{type(self).__name__} must say which input its branch {b!r} encodes "
                                          f"(it reads {m!r}): override Readout.streams")
            out[b] = m
        return out

    def branch_table(self, branch: str) -> pd.DataFrame:
        """The neuron-table rows of one branch, index reset."""
        table = self.neuron_table()
        return table[table["branch"] == branch].reset_index(drop=True)
