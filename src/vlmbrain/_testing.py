"""Small synthetic inputs for tests and examples (no downloads)."""

from __future__ import annotations

import numpy as np


#: Captions of the small custom study written by :func:`write_caption_study`.
STUDY_WORDS = ("a red circle", "two blue squares above a green triangle", "one small yellow square",
               "three large purple circles move left")


def write_caption_study(folder, rng, n_subjects, n_columns, fmri_extra=None, n_atoms=4):
    """A user's own study on disk: per-run TSV captions (4 s cues) and .npy runs (60 TRs) per subject.

    Returns the path of its YAML configuration (minilm, parametric encoding) and the subjects' paths.
    """
    import yaml

    for run in ("r1", "r2"):
        lines = ["onset\tduration\ttext"] + [f"{4 * i}\t4\t{STUDY_WORDS[i % 4]}" for i in range(15)]
        (folder / f"{run}.tsv").write_text("\n".join(lines) + "\n")
    subjects = []
    for s in range(n_subjects):
        paths = []
        for run in ("r1", "r2"):
            p = folder / f"sub{s}_{run}.npy"
            np.save(p, rng.normal(size=(60, n_columns)).astype(np.float32))
            paths.append(str(p))
        subjects.append(paths)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({
        "stimulus": {"kind": "custom", "runs": [{"name": "r1", "n_trs": 60, "captions": "r1.tsv"},
                                                 {"name": "r2", "n_trs": 60, "captions": "r2.tsv"}]},
        "fmri": {"kind": "npy", "subjects": subjects, **(fmri_extra or {})},
        "models": [{"name": "minilm"}],
        "dictionary": {"n_atoms": n_atoms},
        "encoding": {"n_shifts": 0},
    }))
    return path, subjects
