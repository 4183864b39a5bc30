"""The bad-input corpus: each case breaks the small valid study (conftest.py) in one way.

Every case must end with exit code 2, exactly one ``vlmbrain: error:`` line that names what is
wrong (the fragments listed with the case), no traceback and no half-written artifact. Cases
of the ``config`` and ``preflight`` classes stop before anything is computed: no run
directory is created (no ``activations/``), and a preflight error says that nothing was
computed. ``data`` cases need a data body (an all-NaN run): they stop in the brain stage,
before any extraction.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from vlmbrain.cli import main

CASES = []


def case(*expect, kind="preflight"):
    """Register ``fn(study, inputs, monkeypatch) -> argv | None`` as a case; ``expect``: fragments of the error."""
    def deco(fn):
        CASES.append(pytest.param(fn, expect, kind, id=fn.__name__))
        return fn
    return deco


def runs(s):
    return s.cfg["stimulus"]["runs"]


# ---------------------------------------------------------------------------- the configuration file
@case("unknown key 'encoding.metod'", "allowed keys here", kind="config")
def unknown_key(s, m, mp):
    s.cfg["encoding"]["metod"] = "ols"


@case("not valid YAML", "line", kind="config")
def yaml_syntax(s, m, mp):
    s.write("stimulus: [kind: custom\nfmri: {}\n")


def _with_networks_line(s, value):
    cfg = dict(s.cfg)
    cfg.pop("networks")
    return yaml.safe_dump(cfg, sort_keys=False) + f"networks: {value}\n"


@case("YAML's null", "write 'null' in quotes", kind="config")
def yaml_null_key(s, m, mp):
    s.write(_with_networks_line(s, "{null: spin}"))


@case("the key True under 'networks' is not text", "quotes", kind="config")
def yaml_bool_key(s, m, mp):
    s.write(_with_networks_line(s, "{on: spin}"))


@case("'dictionary.n_atoms' = 'many'", kind="config")
def n_atoms_not_a_number(s, m, mp):
    s.cfg["dictionary"]["n_atoms"] = "many"


@case("'dictionary.n_atoms' = 0", kind="config")
def n_atoms_zero(s, m, mp):
    s.cfg["dictionary"]["n_atoms"] = 0


@case("'encoding.q' = 1.5", kind="config")
def q_above_one(s, m, mp):
    s.cfg["encoding"]["q"] = 1.5


@case("'signal.hrf' = 'gamma' is not allowed", kind="config")
def unknown_hrf(s, m, mp):
    s.cfg["signal"] = {"hrf": "gamma"}


@case("must be a mapping of sections", kind="config")
def config_is_a_list(s, m, mp):
    s.write("- stimulus\n- fmri\n")


@case("absent.yaml' does not exist", kind="config")
def config_file_missing(s, m, mp):
    return ["run", str(s.path("absent.yaml")), "--out", str(s.out)]


@case("'models.0.device' = 'gpu'", "cuda", kind="config")
def unknown_device(s, m, mp):
    s.cfg["models"][0]["device"] = "gpu"


@case("'stimulus.runs.0.n_trs' = 0", kind="config")
def zero_trs(s, m, mp):
    runs(s)[0]["n_trs"] = 0


# ---------------------------------------------------------------------------- stimulus
@case("'models' is empty")
def no_models(s, m, mp):
    s.cfg["models"] = []


@case("'stimulus.kind' = 'movie' is not allowed", "'custom'")
def unknown_stimulus_kind(s, m, mp):
    s.cfg["stimulus"]["kind"] = "movie"


@case("stimulus.kind = 'custom' needs stimulus.runs")
def custom_without_runs(s, m, mp):
    s.cfg["stimulus"]["runs"] = []


@case("the run name 'r1' is given 2 times", "unique")
def duplicate_run_names(s, m, mp):
    runs(s)[1]["name"] = "r1"


@case("stimulus.runs.0 (r1) gives both video and frames_dir")
def video_and_frames(s, m, mp):
    runs(s)[0].update(video="a.mp4", frames_dir="frames")


@case("stimulus.runs.0.captions", "nope.tsv: file not found")
def captions_missing(s, m, mp):
    runs(s)[0]["captions"] = "nope.tsv"


@case("stimulus.runs.0.captions", "is a folder")
def captions_folder(s, m, mp):
    s.path("caps").mkdir()
    runs(s)[0]["captions"] = "caps"


@case("stimulus.runs.1.captions", "has no caption text", "run r2")
def captions_without_text(s, m, mp):
    s.path("r2.tsv").write_text("onset\tduration\ttext\n0\t4\t\n4\t4\t \n")


@case("stimulus.runs.0.captions", "last cue starts at 70 s, after run r1 ends at 60 s", "n_trs")
def captions_past_the_end(s, m, mp):
    m.write_captions(s.path("r1.tsv"), n_cues=18, step=4, start=2)


@case("lacks column(s) ['duration']")
def captions_without_duration(s, m, mp):
    s.path("r1.tsv").write_text("onset\ttext\n0\ta red circle\n")


@case("line 3: onset/duration must be numbers")
def captions_bad_onset(s, m, mp):
    s.path("r1.tsv").write_text("onset\tduration\ttext\n0\t4\ta red circle\nfour\t4\ta blue square\n")


@case("unsupported caption format 'docx'")
def captions_docx(s, m, mp):
    s.path("r1.docx").write_bytes(b"PK\x03\x04 not captions")
    runs(s)[0]["captions"] = "r1.docx"


@case("r1.srt: not a valid caption file")
def captions_broken_srt(s, m, mp):
    s.path("r1.srt").write_text("1\nhello without timing\n\n2\nworld\n")
    runs(s)[0]["captions"] = "r1.srt"


@case("runs ['r2'] have no captions while others do")
def captions_for_one_run_only(s, m, mp):
    del runs(s)[1]["captions"]


@case("stimulus.runs.1.n_trs is missing", "has no run 2")
def n_trs_without_an_fmri_run(s, m, mp):
    del runs(s)[1]["n_trs"]
    s.cfg["fmri"]["paths"] = s.cfg["fmri"]["paths"][:1]


@case("stimulus.runs.0.frames_dir", "folder not found")
def frames_dir_missing(s, m, mp):
    for r in runs(s):
        r["frames_dir"] = f"frames_{r['name']}"


@case("stimulus.runs.0.frames_dir", "has 3 images but run r1 has 60 TRs")
def frames_too_few(s, m, mp):
    for r in runs(s):
        m.write_frames(s.path(f"frames_{r['name']}"), 3)
        r["frames_dir"] = f"frames_{r['name']}"


@case("no number in the file name")
def frames_without_numbers(s, m, mp):
    m.write_frames(s.path("frames"), 2)
    (s.path("frames") / "frame_0001.png").rename(s.path("frames") / "cover.png")
    for r in runs(s):
        r["frames_dir"] = "frames"


@case("stimulus.runs.0.video", "nope.mp4: file not found")
def video_missing(s, m, mp):
    for r in runs(s):
        r["video"] = "nope.mp4"


@case("m.mp4: not a readable video")
def video_not_a_video(s, m, mp):
    s.path("m.mp4").write_text("this is text, not a movie")
    for r in runs(s):
        r["video"] = "m.mp4"


@case("stimulus.runs.0.video", "lasts 3.0 s but run r1 needs frames up to 59.5 s", "stimulus.runs.0.n_trs")
def video_too_short(s, m, mp):
    m.write_video(s.path("m.mp4"), seconds=3.0)
    for r in runs(s):
        r["video"] = "m.mp4"


@case("stimulus.kind = 'hcp7t' needs stimulus.movie_dir")
def hcp7t_without_folders(s, m, mp):
    s.cfg["stimulus"] = {"kind": "hcp7t"}


@case("stimulus.tr = 2.0 but the HCP 7T movie runs have TR = 1.0 s")
def hcp7t_wrong_tr(s, m, mp):
    s.cfg["stimulus"] = {"kind": "hcp7t", "tr": 2.0, "wordnet_dir": "wordnet"}


@case("stimulus.movie_dir", "folder not found")
def hcp7t_movie_dir_missing(s, m, mp):
    s.cfg["stimulus"] = {"kind": "hcp7t", "movie_dir": "movies"}


@case("models.0.name = 'minilm' reads text but the stimulus has image", "captions")
def text_model_on_frames(s, m, mp):
    for r in runs(s):
        m.write_frames(s.path(f"frames_{r['name']}"), 60)
        r["frames_dir"] = f"frames_{r['name']}"
        del r["captions"]


# ---------------------------------------------------------------------------- fMRI
@case("'fmri.kind' = 'mat' is not allowed")
def unknown_fmri_kind(s, m, mp):
    s.cfg["fmri"]["kind"] = "mat"


@case("r9.npy: file not found")
def fmri_file_missing(s, m, mp):
    s.cfg["fmri"]["paths"][1] = "r9.npy"


@case("fmri.paths (one subject) and fmri.subjects (several) are both given")
def paths_and_subjects(s, m, mp):
    s.cfg["fmri"]["subjects"] = [["r1.npy", "r2.npy"]]


@case("fmri.kind = 'npy' needs fmri.paths")
def no_fmri_files(s, m, mp):
    s.cfg["fmri"]["paths"] = []


@case("fmri.paths has 3 files but stimulus.runs has 2 runs (r1, r2)", "one fMRI file per stimulus run")
def three_fmri_for_two_runs(s, m, mp):
    m.write_npy(s.path("r3.npy"))
    s.cfg["fmri"]["paths"].append("r3.npy")


@case("stimulus run r2 has 60 TRs but fMRI run r2", "has 50 TRs")
def run_length_mismatch(s, m, mp):
    m.write_npy(s.path("r2.npy"), n_trs=50)


@case("r2.npy: a 3-D array of shape (60, 10, 20)", "2-D (n_timepoints, n_columns)")
def npy_3d(s, m, mp):
    np.save(s.path("r2.npy"), np.zeros((60, 10, 20), np.float32))


@case("r2.npy: a 1-D array")
def npy_1d(s, m, mp):
    np.save(s.path("r2.npy"), np.zeros(60, np.float32))


@case("r2.npy: array of dtype <U1", "must hold numbers")
def npy_of_strings(s, m, mp):
    np.save(s.path("r2.npy"), np.full((60, 3), "a"))


@case("r2.npy: not a readable .npy array", "truncated")
def npy_truncated(s, m, mp):
    raw = s.path("r2.npy").read_bytes()
    s.path("r2.npy").write_bytes(raw[: len(raw) // 2])


@case("r2.npy has 150 columns but", "has 200")
def npy_columns_differ(s, m, mp):
    m.write_npy(s.path("r2.npy"), n_columns=150)


@case("has 200 grayordinates but fmri.n_grayordinates = 300")
def wrong_grayordinate_count(s, m, mp):
    s.cfg["fmri"]["n_grayordinates"] = 300


@case("fmri.paths.0", "is not a npy file", "set fmri.kind: cifti")
def cifti_given_as_npy(s, m, mp):
    for i, run in enumerate(("r1", "r2")):
        m.write_dtseries(s.path(f"{run}.dtseries.nii"))
        s.cfg["fmri"]["paths"][i] = f"{run}.dtseries.nii"


@case("fmri.kind = 'nifti' needs fmri.mask")
def nifti_without_mask(s, m, mp):
    for i, run in enumerate(("r1", "r2")):
        m.write_nifti(s.path(f"{run}.nii.gz"))
        s.cfg["fmri"]["paths"][i] = f"{run}.nii.gz"
    s.cfg["fmri"]["kind"] = "nifti"


def _nifti_study(s, m, **kw):
    for i, run in enumerate(("r1", "r2")):
        m.write_nifti(s.path(f"{run}.nii.gz"), **kw)
        s.cfg["fmri"]["paths"][i] = f"{run}.nii.gz"
    m.write_mask(s.path("mask.nii.gz"))
    s.cfg["fmri"].update(kind="nifti", mask="mask.nii.gz")


@case("r2.nii.gz: a 3-D NIfTI image", "4-D volume series")
def nifti_3d_run(s, m, mp):
    _nifti_study(s, m)
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.float32), np.eye(4)), str(s.path("r2.nii.gz")))


@case("the file's TR is 2 s but stimulus.tr = 1 s")
def nifti_tr_mismatch(s, m, mp):
    _nifti_study(s, m, tr=2.0)


@case("fmri.mask = ", "has volumes of (3, 3, 3)", "(4, 5, 6)")
def nifti_mask_of_another_space(s, m, mp):
    _nifti_study(s, m)
    m.write_mask(s.path("mask.nii.gz"), shape=(3, 3, 3))


@case("fmri.mask is only used with fmri.kind: nifti")
def mask_with_npy(s, m, mp):
    m.write_mask(s.path("mask.nii.gz"))
    s.cfg["fmri"]["mask"] = "mask.nii.gz"


@case("the file's TR is 0.72 s but stimulus.tr = 1 s")
def cifti_tr_mismatch(s, m, mp):
    for i, run in enumerate(("r1", "r2")):
        m.write_dtseries(s.path(f"{run}.dtseries.nii"), tr=0.72)
        s.cfg["fmri"]["paths"][i] = f"{run}.dtseries.nii"
    s.cfg["fmri"]["kind"] = "cifti"


@case("r2.dtseries.nii: a CIFTI file with a scalar axis, not a time series")
def cifti_dscalar_as_run(s, m, mp):
    import nibabel as nib
    from nibabel.cifti2 import cifti2_axes as ca

    m.write_dtseries(s.path("r1.dtseries.nii"))
    img = nib.Cifti2Image(np.zeros((2, 200), np.float32), header=(ca.ScalarAxis(["a", "b"]), m.brain_axis()))
    nib.save(img, str(s.path("r2.dtseries.nii")))
    s.cfg["fmri"].update(kind="cifti", paths=["r1.dtseries.nii", "r2.dtseries.nii"])


@case("r2.dtseries.nii: file is truncated")
def cifti_truncated(s, m, mp):
    for i, run in enumerate(("r1", "r2")):
        m.write_dtseries(s.path(f"{run}.dtseries.nii"))
        s.cfg["fmri"]["paths"][i] = f"{run}.dtseries.nii"
    raw = s.path("r2.dtseries.nii").read_bytes()
    s.path("r2.dtseries.nii").write_bytes(raw[:-500])
    s.cfg["fmri"]["kind"] = "cifti"


@case("fmri.group = 'per-subject'", "fmri.paths (one subject)", "fmri.group: average")
def per_subject_with_paths(s, m, mp):
    s.cfg["fmri"]["group"] = "per-subject"


def _subjects(s, m, n):
    subjects = []
    for k in range(n):
        subjects.append([str(m.write_npy(s.path(f"s{k}_{r}.npy"), seed=10 * k + i)) for i, r in enumerate(("r1", "r2"))])
    s.cfg["fmri"] = {"kind": "npy", "subjects": subjects, "group": "per-subject"}


@case("needs at least 3 subjects", "got 2")
def per_subject_two_subjects(s, m, mp):
    _subjects(s, m, 2)


@case("fmri.group = 'per-subject' tests across subjects", "encoding.correction 'fdr'")
def per_subject_fwer(s, m, mp):
    _subjects(s, m, 3)
    s.cfg["encoding"].update(correction="fwer", n_shifts=100)


@case("the subjects have different numbers of runs", "fmri.subjects.1: 1")
def subjects_run_counts_differ(s, m, mp):
    _subjects(s, m, 3)
    s.cfg["fmri"]["subjects"][1] = s.cfg["fmri"]["subjects"][1][:1]


@case("fmri.paths names", "r1.npy 2 times")
def same_file_twice(s, m, mp):
    s.cfg["fmri"]["paths"] = ["r1.npy", "r1.npy"]


@case("stimulus.runs has 1 run", "leave-one-run-out prediction (r_cv) needs at least 2 runs")
def single_run(s, m, mp):
    del runs(s)[1]
    s.cfg["fmri"]["paths"] = ["r1.npy"]


# ---------------------------------------------------------------------------- models
@case("models.0.name = 'gpt-5' is not a registered alias", "vlmbrain models")
def unknown_model(s, m, mp):
    s.cfg["models"] = [{"name": "gpt-5"}]


@case("models.0.name", "is a folder without config.json")
def model_folder_without_config(s, m, mp):
    s.path("mymodel").mkdir()
    s.cfg["models"] = [{"name": str(s.path("mymodel"))}]


@case("models.0.name", "has config.json but no weights")
def model_folder_without_weights(s, m, mp):
    s.path("mymodel").mkdir()
    (s.path("mymodel") / "config.json").write_text(json.dumps({"model_type": "bert"}))
    s.cfg["models"] = [{"name": str(s.path("mymodel"))}]


@case("models.0.name = 'meter-clip16-roberta' needs a METER checkpoint", "models.0.options.checkpoint")
def meter_without_checkpoint(s, m, mp):
    mp.delenv("VLMBRAIN_METER_CKPT", raising=False)
    s.cfg["models"] = [{"name": "meter-clip16-roberta"}]


@case("models.0.options.checkpoint = ", "meter.ckpt", "file not found")
def meter_checkpoint_missing(s, m, mp):
    s.cfg["models"] = [{"name": "meter-clip16-roberta", "options": {"checkpoint": str(s.path("meter.ckpt"))}}]


@case("models.0.name = 'nobody/no-such-model'", "HF_HUB_OFFLINE=1 forbids downloading")
def hub_model_not_cached(s, m, mp):
    mp.setenv("HF_HUB_OFFLINE", "1")
    s.cfg["models"] = [{"name": "nobody/no-such-model"}]


@case("models.1.name = 'minilm' is given twice")
def same_model_twice(s, m, mp):
    s.cfg["models"] = [{"name": "minilm"}, {"name": "minilm", "site": "mlp"}]


@case("models.0.device = 'cuda' but no CUDA device is available")
def cuda_without_cuda(s, m, mp):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    s.cfg["models"][0]["device"] = "cuda"


# ---------------------------------------------------------------------------- signal, dictionary, encoding
@case("signal.hrf = 'lag' with signal.lag = 0 shifts nothing")
def lag_hrf_without_lag(s, m, mp):
    s.cfg["signal"] = {"hrf": "lag", "lag": 0}


@case("signal.lag = 5 is only used with signal.hrf: lag")
def lag_without_lag_hrf(s, m, mp):
    s.cfg["signal"] = {"hrf": "spm", "lag": 5}


@case("signal.lag = 60 TRs is not shorter than the shortest run (60 TRs)")
def lag_longer_than_a_run(s, m, mp):
    s.cfg["signal"] = {"hrf": "lag", "lag": 60}


@case("dictionary.n_atoms = 200 but the encoding fits the atoms on 120 TRs", "use dictionary.n_atoms <= 58")
def more_atoms_than_trs(s, m, mp):
    s.cfg["dictionary"]["n_atoms"] = 200


@case("dictionary.n_atoms = 5000")
def five_thousand_atoms(s, m, mp):
    s.cfg["dictionary"]["n_atoms"] = 5000


@case("dictionary.alpha = 1e+09 makes every code zero")
def alpha_huge(s, m, mp):
    s.cfg["dictionary"]["alpha"] = 1e9


@case("encoding.n_shifts = 0 (parametric p) needs encoding.method 'ols' or 'ar1'")
def ridge_without_shifts(s, m, mp):
    s.cfg["encoding"].update(method="ridge", n_shifts=0)


@case("encoding.correction = 'fwer' uses the max-statistic of the shift null")
def fwer_without_shifts(s, m, mp):
    s.cfg["encoding"].update(correction="fwer", n_shifts=0)


@case("encoding.n_shifts = 5 is too few: at least 20")
def five_shifts(s, m, mp):
    s.cfg["encoding"]["n_shifts"] = 5


@case("encoding.n_shifts = 50 is too few: at least 99", "encoding.q = 0.01")
def fwer_shifts_below_one_over_q(s, m, mp):
    s.cfg["encoding"].update(correction="fwer", n_shifts=50, q=0.01)


@case("the 50 training TRs admit only 11 distinct circular shifts", "encoding.n_shifts: 0")
def shifts_on_short_runs(s, m, mp):
    for r, name in zip(runs(s), ("r1", "r2"), strict=True):
        r["n_trs"] = 25
        m.write_npy(s.path(f"{name}.npy"), n_trs=25)
        m.write_captions(s.path(f"{name}.tsv"), n_cues=6)
    s.cfg["encoding"]["n_shifts"] = 100


@case("'encoding.method' = 'lasso' is not allowed")
def unknown_encoding_method(s, m, mp):
    s.cfg["encoding"]["method"] = "lasso"


# ---------------------------------------------------------------------------- atlas
@case("networks.atlas", "nope.dlabel.nii")
def atlas_file_missing(s, m, mp):
    s.cfg["networks"]["atlas"] = "nope.dlabel.nii"


@case("networks.atlas", "schaefer")
def atlas_unknown_name(s, m, mp):
    s.cfg["networks"]["atlas"] = "schaefer"


@case("networks.atlas", "91282", "200")
def atlas_of_another_size(s, m, mp):
    s.cfg["networks"]["atlas"] = "cabnp"


# ---------------------------------------------------------------------------- the run directory
@case("the run directory", "(--out) is an existing file, not a folder")
def out_is_a_file(s, m, mp):
    s.out.write_text("my notes")


@case("the run directory", "cannot be created", "is a file, not a folder")
def out_under_a_file(s, m, mp):
    s.path("notes.txt").write_text("my notes")
    return ["run", str(s.write()), "--out", str(s.path("notes.txt") / "run")]


# ---------------------------------------------------------------------------- inspect
@case("x.npy: a 3-D array of shape (5, 4, 3)", kind="cli")
def inspect_3d_npy(s, m, mp):
    np.save(s.path("x.npy"), np.zeros((5, 4, 3), np.float32))
    return ["inspect", str(s.path("x.npy"))]


@case("y.dtseries.nii: file not found", kind="cli")
def inspect_missing(s, m, mp):
    return ["inspect", str(s.path("y.dtseries.nii"))]


# ---------------------------------------------------------------------------- data bodies
@case("fMRI run r2", "is NaN or constant in every one of its 200 columns", kind="data")
def all_nan_run(s, m, mp):
    np.save(s.path("r2.npy"), np.full((60, 200), np.nan, np.float32))


@case("fMRI run r1", "is NaN or constant in every one of its 200 columns", kind="data")
def constant_run(s, m, mp):
    np.save(s.path("r1.npy"), np.ones((60, 200), np.float32))


@case("no grayordinate is usable in every run", kind="data")
def half_nan_runs(s, m, mp):
    a = np.random.default_rng(0).normal(size=(60, 200)).astype(np.float32)
    b = a.copy()
    a[:, :100] = np.nan
    b[:, 100:] = np.nan
    np.save(s.path("r1.npy"), a)
    np.save(s.path("r2.npy"), b)


# ---------------------------------------------------------------------------- the corpus
@pytest.mark.parametrize("mutate,expect,kind", CASES)
def test_bad_input(mutate, expect, kind, study, inputs, capsys, monkeypatch):
    argv = mutate(study, inputs, monkeypatch)
    if argv is None:
        cfg = study.root / "run.yaml"
        if not cfg.exists():
            study.write()
        argv = ["run", str(cfg), "--out", str(study.out), "-q"]
    existed = study.out.exists()
    code = main(argv)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("vlmbrain: error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in expect:
        assert fragment in lines[0], (fragment, lines[0])
    assert not inputs.temporaries(study.root), "a half-written artifact was left behind"
    assert not (study.out / "activations").exists() if study.out.is_dir() else True
    if kind in ("config", "preflight"):
        assert study.out.exists() == existed, "nothing may be written before the checks pass"
    if kind == "preflight":
        assert lines[0].endswith("nothing was computed"), lines[0]


def test_the_study_itself_passes_the_preflight(study):
    """The baseline is valid: every case's error is the case's own."""
    from vlmbrain.config import load_config
    from vlmbrain.pipeline import Pipeline
    from vlmbrain.stages import STAGES

    Pipeline(load_config(study.write()), study.out).preflight([STAGES.get(n) for n in STAGES.names()])
    assert not study.out.exists()


def test_corpus_size():
    assert len(CASES) >= 60
