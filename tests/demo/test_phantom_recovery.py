import numpy as np
import pandas as pd

from vlmbrain.demo.phantom import make_phantom
from vlmbrain.demo.recovery import RECOVERY_COLUMNS, score_recovery, summarize_recovery


def _attrs(rng, T):
    rest = np.zeros(T, bool)
    rest[:10] = True
    rest[60:70] = True
    return pd.DataFrame(
        {
            "edge_energy": np.where(rest, 0, rng.uniform(0.2, 1, T)),
            "caption_words": np.where(rest, 0, rng.integers(3, 9, T)),
            "rest": rest.astype(float),
        }
    )


def test_phantom_plants_known_signs_in_known_networks(rng):
    T, V = 120, 300
    labels = np.repeat([1, 2, 3], 100)
    names = {1: "Visual1", 2: "Language", 3: "Default"}
    planted = (("Visual1", "edge_energy", 1), ("Language", "caption_words", 1), ("Default", "stimulus_on", -1))
    runs = np.repeat([0, 1], 60)
    ph = make_phantom(_attrs(rng, T), runs, labels, names, planted=planted, noise=0.3, seed=3)
    assert ph.data.shape == (T, V) and ph.data.dtype == np.float32
    assert ph.truth["planted_sign"].tolist() == [1, 1, -1]
    for i, (net, _, sign) in enumerate(planted):
        nid = {v: k for k, v in names.items()}[net]
        w = ph.weights[i]
        assert np.all(w[labels != nid] == 0)
        assert (w[labels == nid] != 0).sum() == 70  # responsive fraction 0.7
        assert np.all(np.sign(w[w != 0]) == sign)
        # a responsive grayordinate follows its driver with the planted sign (noise SD 0.3)
        v = np.flatnonzero(w)[0]
        y = ph.data[:, v] - np.array([ph.data[runs == r, v].mean() for r in runs])
        r = np.corrcoef(y, ph.drivers[net])[0, 1]
        assert np.sign(r) == sign and abs(r) > 0.5


def test_phantom_is_deterministic(rng):
    attrs = _attrs(rng, 80)
    a = make_phantom(attrs, np.repeat([0, 1], 40), np.repeat([1, 2], 50), {1: "Visual1", 2: "Default"},
                     planted=(("Visual1", "edge_energy", 1),), seed=7)
    b = make_phantom(attrs, np.repeat([0, 1], 40), np.repeat([1, 2], 50), {1: "Visual1", 2: "Default"},
                     planted=(("Visual1", "edge_energy", 1),), seed=7)
    np.testing.assert_array_equal(a.data, b.data)


def test_recovery_sign_is_map_sign_times_atom_sign(rng):
    T = 100
    g1, g2 = rng.normal(size=T), rng.normal(size=T)
    drivers = pd.DataFrame({"Visual1": g1, "Default": g2})
    truth = pd.DataFrame({"network": ["Visual1", "Default"], "attribute": ["a", "b"], "planted_sign": [1, -1]})
    # atom 0 = -g1 (flipped), affiliated to Visual1 via its NEGATIVE map -> effective +1 (correct)
    # atom 1 = +g2, affiliated to Default via its POSITIVE map -> effective +1 (wrong sign)
    D = np.column_stack([-g1, g2, rng.normal(size=T)])
    aff = pd.DataFrame(
        {
            "model": "m", "branch": "b", "atom": [0, 1, 2], "sign": ["-", "+", "+"],
            "network": ["Visual1", "Default", "Visual1"], "overlap_rate": [0.5, 0.4, 0.3],
            "affiliated": [True, True, False],
        }
    )
    rec = score_recovery(truth, drivers, {("m", "b"): D}, aff)
    assert list(rec.columns[:4]) == list(RECOVERY_COLUMNS[:4])
    v1 = rec[rec.network == "Visual1"].iloc[0]
    assert v1.recovered and v1.recovered_sign == 1 and v1.atom == 0
    dm = rec[rec.network == "Default"].iloc[0]
    assert not dm.recovered and dm.recovered_sign == 1
    summary = summarize_recovery(rec)
    assert summary.set_index("network")["recovered"].to_dict() == {"Visual1": True, "Default": False}


def test_recovery_without_affiliated_atom():
    truth = pd.DataFrame({"network": ["Language"], "attribute": ["w"], "planted_sign": [1]})
    rec = score_recovery(truth, pd.DataFrame({"Language": np.arange(10.0)}), {("m", "t"): np.ones((10, 2))},
                         pd.DataFrame(columns=["model", "branch", "atom", "sign", "network", "overlap_rate", "affiliated"]))
    assert rec.iloc[0].recovered_sign == 0 and not rec.iloc[0].recovered
