"""Toy-world generator: determinism, shapes, rest blocks, captions and attributes match the frames."""

import numpy as np
import pytest

from vlmbrain.errors import ConfigError
from vlmbrain.toyworld import (
    ATTRIBUTE_COLUMNS,
    caption_scene,
    generate_movie,
    parse_caption,
    render_scene,
    sample_scene,
    vocabulary,
)
from vlmbrain.toyworld.scenes import COLORS, PLURALS, TEXTURE_RGB


@pytest.fixture(scope="module")
def movie():
    return generate_movie(n_runs=2, run_length=120, tr=1.0, rest_every=3, seed=3, image_size=64)


def test_shapes_and_types(movie):
    T = 240
    assert movie.frames.shape == (T, 64, 64, 3) and movie.frames.dtype == np.uint8
    assert len(movie.captions) == T
    assert list(movie.attributes.columns) == list(ATTRIBUTE_COLUMNS)
    assert movie.attributes.shape == (T, len(ATTRIBUTE_COLUMNS))
    assert movie.rest.shape == movie.runs.shape == movie.clips.shape == (T,)
    assert movie.rest.dtype == bool
    np.testing.assert_array_equal(movie.runs, np.repeat([0, 1], 120))
    np.testing.assert_array_equal(movie.run_tr, np.tile(np.arange(120), 2))
    for col in ATTRIBUTE_COLUMNS:
        assert np.isfinite(movie.attributes[col]).all(), col
        assert movie.attributes[col].std() > 0, col  # every column varies, so it is z-scorable


def test_deterministic():
    a = generate_movie(n_runs=1, run_length=60, seed=11)
    b = generate_movie(n_runs=1, run_length=60, seed=11)
    c = generate_movie(n_runs=1, run_length=60, seed=12)
    assert a.frames.tobytes() == b.frames.tobytes()
    assert a.captions == b.captions
    assert a.attributes.equals(b.attributes)
    assert a.frames.tobytes() != c.frames.tobytes()


def test_rest_blocks(movie):
    rest = movie.rest
    for run in (0, 1):
        sel = movie.runs == run
        assert rest[sel][:10].all() and not rest[sel][10]  # each run opens with 10 s of rest
    assert (movie.frames[rest] == 0).all()
    assert all(c == "" for c, r in zip(movie.captions, rest) if r)
    assert all(c == "" for c, r in zip(movie.clips, rest) if r)
    assert all(c != "" for c, r in zip(movie.captions, rest) if not r)
    np.testing.assert_array_equal(movie.attributes["rest"].to_numpy(), rest.astype(float))
    assert (movie.attributes.loc[rest, "n_objects"] == 0).all()
    # rest blocks between segments (after every 3 clips), not only at run starts
    starts = np.flatnonzero(rest[1:] & ~rest[:-1]) + 1
    assert len(starts) >= 2


def test_segments_and_scene_changes(movie):
    seg = movie.segments
    change = movie.attributes["scene_change"].to_numpy()
    first = np.r_[True, seg[1:] != seg[:-1]] & (seg >= 0)
    np.testing.assert_array_equal(change, first.astype(float))
    # segments last 8-20 TRs unless cut by the end of the run
    for s in np.unique(seg[seg >= 0]):
        idx = np.flatnonzero(seg == s)
        assert np.all(np.diff(idx) == 1)
        ends_run = movie.run_tr[idx[-1]] == 119
        assert 8 <= len(idx) <= 20 or ends_run
        assert len({movie.captions[i] for i in idx}) == 1
        assert len({movie.clips[i] for i in idx}) == 1
    # within a segment frames evolve smoothly: consecutive-frame change is smaller than across cuts
    diff = np.abs(np.diff(movie.frames.astype(float), axis=0)).mean(axis=(1, 2, 3))
    within = diff[(seg[1:] == seg[:-1]) & (seg[1:] >= 0)]
    across = diff[(seg[1:] != seg[:-1]) & (seg[1:] >= 0) & (seg[:-1] >= 0)]
    assert np.median(within) < np.median(across)


def test_attributes_match_frames(movie):
    att = movie.attributes
    lum = (movie.frames.astype(float) @ np.array([0.299, 0.587, 0.114]) / 255).mean(axis=(1, 2))
    np.testing.assert_allclose(att["luminance"], lum, atol=1e-12)
    for name, rgb in COLORS.items():
        frac = (movie.frames == np.array(rgb, dtype=np.uint8)).all(-1).mean(axis=(1, 2))
        np.testing.assert_allclose(att[name], frac)
    for i in np.flatnonzero(~movie.rest):
        parsed = parse_caption(movie.captions[i])
        n = parsed["count"] + (parsed["secondary"]["count"] if parsed["relation"] else 0)
        assert att["n_objects"].iloc[i] == n
        assert att["sem_spatial"].iloc[i] == float(parsed["relation"] is not None)
        assert att["sem_number"].iloc[i] == float(parsed["count"] > 1)
        assert att["sem_motion"].iloc[i] == float(parsed["direction"] != "still")
        assert att["caption_words"].iloc[i] == len(movie.captions[i].split())
        # the caption's colours are visible; colours it does not name are absent
        named = {parsed["color"]} | ({parsed["secondary"]["color"]} if parsed["relation"] else set())
        for name in COLORS:
            assert (att[name].iloc[i] > 0) == (name in named), (movie.captions[i], name)
        if parsed["direction"] == "still":
            assert att["motion_energy"].iloc[i] == 0
        else:
            assert att["motion_energy"].iloc[i] > 0


def test_motion_matches_caption_direction():
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(40):
        scene = sample_scene(rng, duration=10.0)
        parsed = parse_caption(caption_scene(scene))
        if parsed["direction"] == "still":
            continue
        color = np.array(COLORS[scene.primary.color], dtype=np.uint8)

        def centroid(t):
            frame = render_scene(scene, t)
            mask = (frame == color).all(-1) | (frame == np.array(TEXTURE_RGB, dtype=np.uint8)).all(-1)
            if scene.secondary is not None:  # keep only the primary group's half
                mask &= _half_mask(scene)
            ys, xs = np.nonzero(mask)
            return np.array([xs.mean(), ys.mean()])

        delta = centroid(9.0) - centroid(1.0)
        expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[parsed["direction"]]
        axis = 0 if expected[0] else 1
        assert np.sign(delta[axis]) == sum(expected), (caption_scene(scene), delta)
        checked += 1
    assert checked >= 20


def _half_mask(scene):
    s = scene.image_size
    yy, xx = np.mgrid[:s, :s]
    rel = scene.relation
    return {"above": yy < s / 2, "below": yy >= s / 2, "left of": xx < s / 2, "right of": xx >= s / 2}[rel]


def test_captions_describe_objects():
    rng = np.random.default_rng(0)
    for _ in range(100):
        scene = sample_scene(rng, duration=15.0)
        cap = caption_scene(scene)
        parsed = parse_caption(cap)
        p = scene.primary
        assert (parsed["count"], parsed["size"], parsed["texture"], parsed["color"], parsed["shape"]) == (
            p.count, p.size, p.texture, p.color, p.shape)
        assert parsed["direction"] == p.direction
        assert parsed["relation"] == scene.relation
        if scene.secondary is not None:
            s = scene.secondary
            assert parsed["secondary"] == {"count": 1, "size": s.size, "texture": s.texture,
                                           "color": s.color, "shape": s.shape}
            # the relation holds in the image at the start and the end of the scene
            for t in (0.0, scene.duration):
                pc, sc = p.positions_at(t), s.positions_at(t)[0]
                dx, dy = (pc - sc).T
                ok = {"above": dy < 0, "below": dy > 0, "left of": dx < 0, "right of": dx > 0}[scene.relation]
                assert ok.all()
        # every object stays inside the frame for the whole scene
        for g in scene.groups:
            for t in (0.0, scene.duration):
                pos = g.positions_at(t)
                assert (pos - g.radius >= 0).all() and (pos + g.radius <= scene.image_size).all()
        assert set(cap.split()) <= set(vocabulary())
        # the number words match the drawn objects: count pixels' connected blobs is overkill; check plural
        noun = cap.split()[4 if p.texture != "plain" else 3]
        assert noun == (p.shape if p.count == 1 else PLURALS[p.shape])


def test_render_draws_palette_colours_only():
    scene = sample_scene(1, image_size=96)
    frame = render_scene(scene, 0.5)
    assert frame.shape == (96, 96, 3)
    allowed = {tuple(c) for c in COLORS.values()} | {TEXTURE_RGB, (scene.background,) * 3}
    assert {tuple(px) for px in frame.reshape(-1, 3)} <= allowed


def test_timeline_table(movie):
    table = movie.timeline_table()
    assert list(table.columns) == ["tr_index", "run", "run_index", "run_tr", "onset", "frame_time",
                                   "clip", "rest", "caption"]
    assert table["run"].iloc[0] == "toy_run1" and table["run"].iloc[-1] == "toy_run2"
    np.testing.assert_allclose(table["frame_time"] - table["onset"], 0.5)
    with pytest.raises(ConfigError, match="run_names has 1 names but the movie has 2 runs"):
        movie.timeline_table(["only"])


def test_speed_and_tr():
    m = generate_movie(n_runs=1, run_length=100, tr=2.0, seed=0, rest_every=None)
    # opening rest of 10 s is 5 TRs at TR = 2 s; no other rest
    assert m.rest[:5].all() and not m.rest[5:].any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_runs": 0}, "n_runs=0 must be >= 1"),
        ({"run_length": 0}, "run_length=0 must be >= 1"),
        ({"tr": 0.0}, "tr=0.0 must be > 0"),
        ({"image_size": 16}, "image_size=16 is too small"),
        ({"segment_seconds": (5.0, 2.0)}, "segment_seconds"),
        ({"rest_every": -1}, "rest_every=-1"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate_movie(**kwargs)


def test_parse_caption_rejects_garbage():
    with pytest.raises(ConfigError, match="does not follow the toy-world grammar"):
        parse_caption("hello world")
    with pytest.raises(ConfigError, match="has no verb"):
        parse_caption("two small red circles")
    with pytest.raises(ConfigError, match="unknown verb 'fly'"):
        parse_caption("two small red circles fly")
    with pytest.raises(ConfigError, match=r"'stay' must be followed by one of \['still'\], got 'left'"):
        parse_caption("two small red circles stay left")
    with pytest.raises(ConfigError, match="unknown relation 'near'"):
        parse_caption("a small red circle stays still near a blue square")


def test_frames_reproducible_from_scenes(movie):
    for i in np.flatnonzero(~movie.rest)[::17]:
        scene = movie.scenes[movie.segments[i]]
        np.testing.assert_array_equal(render_scene(scene, movie.frame_times[i]), movie.frames[i])
        assert caption_scene(scene) == movie.captions[i]


def test_caption_count_matches_drawn_blobs():
    """Connected blobs of non-background pixels = objects named by the caption.

    Objects of a group are placed with centre distance >= 2 r + 2 px; squares and diamonds reach
    beyond r, so two of them can touch (about 0.1 % of frames, seen as one blob); never more blobs.
    """
    from scipy import ndimage

    rng = np.random.default_rng(0)
    merged = total = 0
    for _ in range(300):
        scene = sample_scene(rng, duration=12.0)
        parsed = parse_caption(caption_scene(scene))
        want = parsed["count"] + (1 if parsed["relation"] else 0)
        for t in (0.0, 6.0, 12.0):
            frame = render_scene(scene, t)
            n = ndimage.label(np.any(frame != scene.background, axis=-1))[1]
            assert n <= want
            merged += n < want
            total += 1
    assert merged / total < 0.01
