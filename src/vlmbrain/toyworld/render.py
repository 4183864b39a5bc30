"""Rasterise toy scenes to RGB frames (numpy, no anti-aliasing: every pixel has an exact palette value)."""

from __future__ import annotations

import numpy as np

from vlmbrain.toyworld.scenes import COLORS, TEXTURE_RGB, Group, Scene


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of half-size ``r`` given pixel offsets from its centre."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        h = 0.85 * r
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.15 * r
    if shape == "triangle":  # apex up, base at +0.85 r
        return (dy <= 0.85 * r) & (np.abs(dx) <= (dy + r) * (1.1 * r) / (1.85 * r))
    raise ValueError(f"unknown shape {shape!r}")


def _texture_mask(texture: str, dx: np.ndarray, dy: np.ndarray, r: float, size: int) -> np.ndarray:
    """Pixels (object-relative, so the pattern moves with the object) painted in the texture colour."""
    period = max(2.0, 4.0 * size / 64.0)
    if texture == "plain":
        return np.zeros(dx.shape, dtype=bool)
    if texture == "striped":
        return np.floor((dy + r) / (period / 2.0)).astype(int) % 2 == 1
    if texture == "dotted":
        return (np.mod(dx + r, period) < period / 2.0) & (np.mod(dy + r, period) < period / 2.0)
    raise ValueError(f"unknown texture {texture!r}")


def _draw_group(frame: np.ndarray, group: Group, t: float, xx: np.ndarray, yy: np.ndarray) -> None:
    size = frame.shape[0]
    color = np.asarray(COLORS[group.color], dtype=np.uint8)
    tex = np.asarray(TEXTURE_RGB, dtype=np.uint8)
    r = group.radius
    for cx, cy in group.positions_at(t):
        x0, x1 = max(0, int(np.floor(cx - 1.2 * r)) - 1), min(size, int(np.ceil(cx + 1.2 * r)) + 2)
        y0, y1 = max(0, int(np.floor(cy - 1.2 * r)) - 1), min(size, int(np.ceil(cy + 1.2 * r)) + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = xx[y0:y1, x0:x1] - cx
        dy = yy[y0:y1, x0:x1] - cy
        mask = _shape_mask(group.shape, dx, dy, r)
        stripes = _texture_mask(group.texture, dx, dy, r, size) & mask
        window = frame[y0:y1, x0:x1]
        window[mask] = color
        window[stripes] = tex


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRIDS:
        c = np.arange(size, dtype=float) + 0.5  # pixel centres
        _GRIDS[size] = np.meshgrid(c, c)  # xx, yy
    return _GRIDS[size]


def render_scene(scene: Scene, t: float = 0.0) -> np.ndarray:
    """Draw a scene at time ``t``.

    Parameters
    ----------
    scene : Scene
    t : float
        Seconds since the scene started (objects move by ``velocity * t`` pixels).

    Returns
    -------
    ndarray of shape (image_size, image_size, 3), uint8
    """
    size = scene.image_size
    frame = np.full((size, size, 3), scene.background, dtype=np.uint8)
    xx, yy = _grid(size)
    for group in scene.groups:
        _draw_group(frame, group, t, xx, yy)
    return frame


def blank_frame(image_size: int) -> np.ndarray:
    """The rest frame: all black, ``(image_size, image_size, 3)`` uint8."""
    return np.zeros((image_size, image_size, 3), dtype=np.uint8)
