"""Where a model's weights live and what its run folder is called (no model is loaded here).

Used by the extract stage (its input files, fingerprinted into the step key) and by the
preflight (weights present before anything runs).
"""

from __future__ import annotations

import re
from pathlib import Path


def model_dirname(name: str) -> str:
    """A folder name for a model alias, hub id or path."""
    base = Path(name).name if ("/" in name and Path(name).exists()) else name
    return re.sub(r"[^A-Za-z0-9_.+-]+", "__", base).strip("_") or "model"


def model_files(mcfg) -> list[Path]:
    """Files a model configuration reads from disk: its weights (a local folder, the folder a
    registered alias loads, the Hugging Face cache snapshot of a hub id) and checkpoint options."""
    import os

    files = []
    p = Path(mcfg.name).expanduser()
    if p.exists():
        files.append(p)
    else:
        files.extend(_registered_weights(mcfg.name))
    for key in ("checkpoint", "tokenizer"):
        value = mcfg.options.get(key)
        if isinstance(value, str) and Path(value).expanduser().exists():
            files.append(Path(value).expanduser())
    if "checkpoint" not in mcfg.options and _family(mcfg.name) == "meter":
        from vlmbrain.models.registry import METER_CKPT_ENV

        env = os.environ.get(METER_CKPT_ENV)
        if env and Path(env).expanduser().is_file():
            files.append(Path(env).expanduser())
    return files


def _family(name: str) -> str | None:
    from vlmbrain.models import list_models

    table = list_models()
    row = table[table["alias"] == name]
    return str(row["family"].iloc[0]) if len(row) else None


def _registered_weights(name: str) -> list[Path]:
    """Where the weights of a registered alias or hub id live on this machine (empty if unknown)."""
    from vlmbrain.models import list_models
    from vlmbrain.models.registry import minilm_path

    table = list_models()
    row = table[table["alias"] == name]
    if len(row):
        family, source = str(row["family"].iloc[0]), str(row["source"].iloc[0])
        if name == "minilm":
            path = minilm_path()
            return [Path(path)] if path and Path(path).is_dir() else []
        if family == "toy":
            from vlmbrain.toyworld.models import toy_model_path

            try:
                return [Path(toy_model_path(name.removeprefix("toy-")))]
            except Exception:  # noqa: BLE001 - the load reports a missing toy model
                return []
        name = source
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return hub_snapshot(name)
    return []


def hub_snapshot(repo_id: str) -> list[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache

        from vlmbrain.models.hf import hf_cache_dir

        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hf_cache_dir())
    except Exception:  # noqa: BLE001 - no cache, no hub client: nothing to fingerprint
        return []
    return [Path(found).parent] if isinstance(found, str) else []
