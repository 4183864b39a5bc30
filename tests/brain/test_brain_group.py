"""Streamed group average (known answer vs numpy, bounded memory) and per-subject tasks."""

import json
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

from vlmbrain.brain.group import group_average
from vlmbrain.brain.subjects import SubjectTaskError, run_per_subject, subject_done
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.signal import zscore_runs

LENGTHS = [30, 20]


def make_subjects(tmp_path, n_sub, n_v, rng, nan_col=None):
    shared = rng.standard_normal((sum(LENGTHS), n_v))
    subjects = {}
    for s in range(n_sub):
        paths = []
        data = shared + rng.standard_normal(shared.shape) * 2 + rng.standard_normal(n_v) * 5
        if nan_col is not None and s == 0:
            data[3, nan_col] = np.nan
        for k, (a, b) in enumerate(zip(np.r_[0, np.cumsum(LENGTHS)][:-1], np.cumsum(LENGTHS), strict=True)):
            p = tmp_path / f"sub{s:02d}_run{k}.npy"
            np.save(p, data[a:b].astype(np.float32))
            paths.append(p)
        subjects[f"sub{s:02d}"] = paths
    return subjects


def reference_mean(subjects):
    runs = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    zs = [zscore_runs(np.concatenate([np.load(p) for p in paths]), runs) for paths in subjects.values()]
    return np.mean([z for z, _ in zs], axis=0), runs


def test_group_average_matches_numpy(tmp_path, rng):
    subjects = make_subjects(tmp_path, 5, 40, rng)
    ref, runs = reference_mean(subjects)
    bd = group_average(subjects, tr=1.0, expected_trs=LENGTHS, chunk_size=7, rezscore=False)
    np.testing.assert_allclose(bd.data, ref, atol=1e-5)
    assert bd.valid.all() and bd.meta["n_subjects"] == 5 and bd.runs.tolist() == runs.tolist()
    bd2 = group_average(subjects, tr=1.0, chunk_size=16, progress=True)
    np.testing.assert_allclose(bd2.data, zscore_runs(ref, runs)[0], atol=1e-4)


def test_group_average_invalid_grayordinate(tmp_path, rng):
    subjects = make_subjects(tmp_path, 4, 10, rng, nan_col=3)
    bd = group_average(subjects, tr=1.0, rezscore=False)
    assert np.flatnonzero(~bd.valid).tolist() == [3] and np.all(bd.data[:, 3] == 0)
    # with a lenient threshold the column is the mean of the 3 subjects that have it
    bd = group_average(subjects, tr=1.0, rezscore=False, min_subject_fraction=0.5)
    runs = np.repeat(np.arange(2), LENGTHS)
    others = [zscore_runs(np.concatenate([np.load(p) for p in v]), runs)[0][:, 3] for k, v in subjects.items()
              if k != "sub00"]
    assert bd.valid[3]
    np.testing.assert_allclose(bd.data[:, 3], np.mean(others, axis=0), atol=1e-5)


def test_group_average_memory_independent_of_subjects(tmp_path, rng):
    n_v = 3000
    subjects = make_subjects(tmp_path, 20, n_v, rng)
    one_subject = sum(LENGTHS) * n_v * 4
    import vlmbrain.signal  # noqa: F401  (import-time allocations are not the average's)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        group_average(subjects, tr=1.0, chunk_size=128)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * one_subject, (peak, one_subject)


def test_group_average_cifti_and_errors(tmp_path, rng):
    axis = ca.BrainModelAxis.from_surface(np.arange(12), 20, "CortexLeft")
    subjects = {}
    for s in range(3):
        p = tmp_path / f"s{s}.dtseries.nii"
        img = nib.Cifti2Image(rng.standard_normal((15, 12)).astype(np.float32),
                              header=(ca.SeriesAxis(0, 1.0, 15, "SECOND"), axis))
        nib.save(img, str(p))
        subjects[f"s{s}"] = [p]
    bd = group_average(subjects, tr=1.0, expected_trs=[15], chunk_size=5, rezscore=False)
    ref = np.mean([zscore_runs(np.asarray(nib.load(str(v[0])).dataobj), np.zeros(15))[0] for v in subjects.values()],
                  axis=0)
    np.testing.assert_allclose(bd.data, ref, atol=1e-5)
    assert bd.space.axis == axis
    with pytest.raises(DimensionError, match=r"stimulus run 1 has 16 TRs but fMRI run run-1 of subject s0 .* has 15"):
        group_average(subjects, tr=1.0, expected_trs=[16])
    np.save(tmp_path / "short.npy", np.zeros((14, 12), np.float32))
    with pytest.raises(DimensionError, match=r"subject x has runs of \[14\] TRs but s0 has \[15\]"):
        group_average({"s0": subjects["s0"], "x": [tmp_path / "short.npy"]}, tr=1.0)
    with pytest.raises(ConfigError, match="at least one subject"):
        group_average({}, tr=1.0)


# ---------------------------------------------------------------- per-subject tasks

def write_sum(subject, spec, workdir):
    """Module-level (picklable) task: writes the sum of its spec."""
    if spec == "boom":
        raise ValueError(f"bad input for {subject}")
    (workdir / "value.txt").write_text(str(sum(spec)))
    # count calls across processes
    with open(workdir.parent / "calls.log", "a") as fh:
        fh.write(subject + "\n")
    return {"n": len(spec)}


def calls(out):
    p = out / "calls.log"
    return sorted(p.read_text().split()) if p.exists() else []


@pytest.mark.parametrize("scheduler", ["serial", "processes", "threads"])
def test_run_per_subject_local_and_resume(tmp_path, scheduler):
    subs = {"s1": [1, 2], "s2": [3], "s3": [4, 5, 6]}
    table = run_per_subject(write_sum, subs, tmp_path, scheduler=scheduler, n_jobs=2)
    assert table["status"].tolist() == ["done"] * 3 and table["subject"].tolist() == ["s1", "s2", "s3"]
    assert (tmp_path / "s3" / "value.txt").read_text() == "15"
    assert json.loads((tmp_path / "s1" / "_done.json").read_text())["result"] == {"n": 2}
    assert calls(tmp_path) == ["s1", "s2", "s3"]
    # resume: nothing recomputed, a new subject computed
    subs["s4"] = [10]
    table = run_per_subject(write_sum, subs, tmp_path, scheduler=scheduler, n_jobs=2)
    assert table["status"].tolist() == ["skipped", "skipped", "skipped", "done"]
    assert calls(tmp_path) == ["s1", "s2", "s3", "s4"]


def test_run_per_subject_failure_is_isolated_and_retried(tmp_path):
    subs = {"a": [1], "b": "boom", "c": [2]}
    with pytest.raises(SubjectTaskError, match=r"1 of 3 subjects failed \(b: ValueError: bad input for b\)") as info:
        run_per_subject(write_sum, subs, tmp_path)
    assert info.value.results["status"].tolist() == ["done", "failed", "done"]
    assert subject_done(tmp_path, "a") and not subject_done(tmp_path, "b") and not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written folders left
    subs["b"] = [7]
    table = run_per_subject(write_sum, subs, tmp_path)
    assert table["status"].tolist() == ["skipped", "done", "skipped"]


def test_run_per_subject_dask_local_and_tcp(tmp_path):
    from dask.distributed import LocalCluster

    subs = {"s1": [1], "s2": [2, 3]}
    table = run_per_subject(write_sum, subs, tmp_path / "a", scheduler="dask-local", n_jobs=2)
    assert table["status"].tolist() == ["done", "done"]
    with LocalCluster(n_workers=1, processes=False, threads_per_worker=2, dashboard_address=None,
                      protocol="tcp://", host="127.0.0.1") as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        table = run_per_subject(write_sum, subs, tmp_path / "b", scheduler=address)
    assert table["status"].tolist() == ["done", "done"] and (tmp_path / "b" / "s2" / "value.txt").read_text() == "5"


def test_run_per_subject_errors(tmp_path):
    with pytest.raises(ConfigError, match="scheduler 'slurm' is unknown"):
        run_per_subject(write_sum, {"a": [1]}, tmp_path, scheduler="slurm")
    with pytest.raises(ConfigError, match="subject ids must be plain folder names"):
        run_per_subject(write_sum, {"../x": [1]}, tmp_path)
