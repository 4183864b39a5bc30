"""Procedural toy scenes and their captions.

A *scene* is one coloured group of identical shapes (1–3 objects, with a size, a texture and a
motion) on a grey background, optionally placed in a spatial relation to a second, static
object. The caption describes every object in the scene with a small fixed grammar, e.g.
``"two small red circles move left above a large striped blue square"``.

Everything is drawn from a :class:`numpy.random.Generator`, so scenes are deterministic given
the generator state. Positions are in pixels of an ``image_size x image_size`` frame, time in
seconds since the scene (segment) started.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlmbrain.errors import ConfigError

#: Colour families and their exact RGB values (frames use exactly these values).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (50, 90, 230),
    "yellow": (235, 210, 50),
    "purple": (150, 70, 200),
}
#: Colour of the stripes / dots drawn on textured objects.
TEXTURE_RGB: tuple[int, int, int] = (255, 255, 255)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
SIZES: dict[str, float] = {"small": 0.065, "large": 0.11}  # radius as a fraction of image_size
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted")
DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (-1.0, 0.0),
    "right": (1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
    "still": (0.0, 0.0),
}
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")
COUNT_WORDS: dict[int, str] = {1: "a", 2: "two", 3: "three"}
PLURALS: dict[str, str] = {s: s + "s" for s in SHAPES}
#: Background grey levels (never equal to a palette or texture value).
BACKGROUND_RANGE: tuple[int, int] = (15, 125)
#: Speed range in pixels per second for a 64-pixel frame (scaled with image_size).
SPEED_RANGE: tuple[float, float] = (1.0, 2.5)
#: Slowest motion (pixels per second at 64 px): at least one pixel per second, so motion is visible.
MIN_SPEED: float = 1.0


def vocabulary() -> list[str]:
    """Every word the caption grammar can produce, sorted.

    Returns
    -------
    list of str
    """
    words = set(COLORS) | set(SHAPES) | set(PLURALS.values()) | set(SIZES) | set(COUNT_WORDS.values())
    words |= {t for t in TEXTURES if t != "plain"}
    words |= {"move", "moves", "stay", "stays", "left", "right", "up", "down", "still"}
    words |= {"above", "below", "of"}
    return sorted(words)


@dataclass(frozen=True)
class Group:
    """A group of identical objects.

    Attributes
    ----------
    shape, color, size, texture : str
        Words from :data:`SHAPES`, :data:`COLORS`, :data:`SIZES`, :data:`TEXTURES`.
    positions : ndarray of shape (count, 2)
        Object centres ``(x, y)`` in pixels at time 0.
    direction : str
        Key of :data:`DIRECTIONS` (``"still"`` for static objects).
    speed : float
        Pixels per second (0 when still).
    radius : float
        Object half-size in pixels.
    """

    shape: str
    color: str
    size: str
    texture: str
    positions: np.ndarray
    direction: str
    speed: float
    radius: float

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    def velocity(self) -> np.ndarray:
        """Velocity ``(vx, vy)`` in pixels per second."""
        return np.asarray(DIRECTIONS[self.direction], dtype=float) * self.speed

    def positions_at(self, t: float) -> np.ndarray:
        """Object centres ``(count, 2)`` at time ``t`` seconds."""
        return self.positions + self.velocity()[None, :] * float(t)


@dataclass(frozen=True)
class Scene:
    """One toy scene: a primary group, optionally related to a static secondary object.

    Attributes
    ----------
    primary : Group
    secondary : Group or None
    relation : str or None
        Key of :data:`RELATIONS`, how ``primary`` sits relative to ``secondary``.
    background : int
        Grey level 0–255 of the background.
    image_size : int
        Frame side in pixels.
    duration : float
        Seconds for which the scene is valid (all objects stay inside the frame).
    """

    primary: Group
    secondary: Group | None
    relation: str | None
    background: int
    image_size: int
    duration: float

    @property
    def groups(self) -> list[Group]:
        return [self.primary] + ([self.secondary] if self.secondary is not None else [])

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)


def _noun_phrase(group: Group) -> str:
    words = [COUNT_WORDS[group.count], group.size]
    if group.texture != "plain":
        words.append(group.texture)
    words.append(group.color)
    words.append(group.shape if group.count == 1 else PLURALS[group.shape])
    return " ".join(words)


def caption_scene(scene: Scene) -> str:
    """The caption of a scene.

    Grammar: ``<count> <size> [<texture>] <colour> <shape[s]> <verb> [<relation> a <size>
    [<texture>] <colour> <shape>]`` with verb ``move(s) <direction>`` or ``stay(s) still``.

    Parameters
    ----------
    scene : Scene

    Returns
    -------
    str
    """
    p = scene.primary
    plural = p.count > 1
    if p.direction == "still":
        verb = "stay still" if plural else "stays still"
    else:
        verb = ("move " if plural else "moves ") + p.direction
    text = f"{_noun_phrase(p)} {verb}"
    if scene.secondary is not None:
        text += f" {scene.relation} {_noun_phrase(scene.secondary)}"
    return text


def _region(relation: str | None, role: str, size: int) -> tuple[float, float, float, float]:
    """Allowed (x0, x1, y0, y1) box for object centres+extent of a group."""
    half = size / 2.0
    full = (0.0, float(size), 0.0, float(size))
    if relation is None:
        return full
    first = role == "primary"
    if relation in ("above", "below"):
        top = (relation == "above") == first
        return (0.0, float(size), 0.0, half) if top else (0.0, float(size), half, float(size))
    left = (relation == "left of") == first
    return (0.0, half, 0.0, float(size)) if left else (half, float(size), 0.0, float(size))


def _place(
    rng: np.random.Generator,
    count: int,
    radius: float,
    velocity: np.ndarray,
    duration: float,
    box: tuple[float, float, float, float],
    margin: float,
    tries: int = 60,
) -> np.ndarray | None:
    """Start positions so every object stays in ``box`` for ``duration`` s and none overlap."""
    x0, x1, y0, y1 = box
    travel = velocity * duration
    lo = np.array([x0, y0]) + radius + margin - np.minimum(travel, 0.0)
    hi = np.array([x1, y1]) - radius - margin - np.maximum(travel, 0.0)
    if np.any(hi < lo):
        return None
    min_gap = 2.0 * radius + 2.0 * margin
    for _ in range(tries):
        pts = rng.uniform(lo, hi, size=(count, 2))
        if count == 1:
            return pts
        d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
        d[np.diag_indices(count)] = np.inf
        if d.min() >= min_gap:
            return pts
    return None


def sample_scene(
    rng: np.random.Generator | int | None = None,
    image_size: int = 64,
    duration: float = 20.0,
    p_relation: float = 0.6,
    p_still: float = 0.2,
) -> Scene:
    """Draw a random scene that stays valid (objects inside the frame) for ``duration`` s.

    Parameters
    ----------
    rng : numpy.random.Generator, int or None
        Random source (an int is a seed).
    image_size : int
        Frame side in pixels (>= 32).
    duration : float
        Seconds the objects move for without leaving the frame (or their half of it).
    p_relation : float
        Probability that the scene has a second, related object.
    p_still : float
        Probability that the primary group does not move.

    Returns
    -------
    Scene

    Raises
    ------
    ConfigError
        If ``image_size`` < 32 or ``duration`` < 0.
    """
    if int(image_size) < 32:
        raise ConfigError(f"image_size={image_size!r} is too small; use image_size >= 32 (default 64).")
    if not duration >= 0:
        raise ConfigError(f"duration={duration!r} must be >= 0 seconds.")
    rng = np.random.default_rng(rng)
    size = int(image_size)
    scale = size / 64.0
    margin = 1.0 * scale

    color_names = list(COLORS)
    relation = RELATIONS[rng.integers(len(RELATIONS))] if rng.random() < p_relation else None

    # primary group
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = color_names[rng.integers(len(color_names))]
    size_word = list(SIZES)[rng.integers(len(SIZES))]
    texture = TEXTURES[rng.integers(len(TEXTURES))]
    count = int(rng.integers(1, 4))
    if rng.random() < p_still:
        direction = "still"
    elif relation in ("above", "below"):
        direction = ("left", "right")[rng.integers(2)]
    elif relation in ("left of", "right of"):
        direction = ("up", "down")[rng.integers(2)]
    else:
        direction = ("left", "right", "up", "down")[rng.integers(4)]
    speed = 0.0 if direction == "still" else float(rng.uniform(*SPEED_RANGE)) * scale
    radius = SIZES[size_word] * size
    box = _region(relation, "primary", size)

    positions = None
    while positions is None:
        vel = np.asarray(DIRECTIONS[direction]) * speed
        positions = _place(rng, count, radius, vel, duration, box, margin)
        if positions is None:
            if speed > MIN_SPEED * scale:
                speed = max(MIN_SPEED * scale, 0.8 * speed)
            elif count > 1:
                count -= 1
            elif size_word == "large":
                size_word, radius = "small", SIZES["small"] * size
            else:  # a single small object always fits when still
                direction, speed = "still", 0.0
    primary = Group(shape, color, size_word, texture, positions, direction, speed if direction != "still" else 0.0, radius)

    secondary = None
    if relation is not None:
        s_shape = SHAPES[rng.integers(len(SHAPES))]
        s_color = color_names[rng.integers(len(color_names))]
        if s_color == color and len(color_names) > 1:  # keep the two groups distinguishable
            s_color = color_names[(color_names.index(s_color) + 1 + rng.integers(len(color_names) - 1)) % len(color_names)]
        s_size = list(SIZES)[rng.integers(len(SIZES))]
        s_texture = TEXTURES[rng.integers(len(TEXTURES))]
        s_radius = SIZES[s_size] * size
        s_pos = _place(rng, 1, s_radius, np.zeros(2), duration, _region(relation, "secondary", size), margin)
        secondary = Group(s_shape, s_color, s_size, s_texture, s_pos, "still", 0.0, s_radius)

    lo, hi = BACKGROUND_RANGE
    background = int(rng.integers(lo, hi + 1))
    return Scene(primary, secondary, relation, background, size, float(duration))


def parse_caption(caption: str) -> dict:
    """Parse a caption produced by :func:`caption_scene` back into its parts.

    Parameters
    ----------
    caption : str

    Returns
    -------
    dict
        Keys ``count, size, texture, color, shape, direction, relation`` and, when a relation is
        present, ``secondary`` (a dict with ``count, size, texture, color, shape``).

    Raises
    ------
    ConfigError
        If the caption does not follow the grammar.
    """
    words = caption.split()
    count_of = {v: k for k, v in COUNT_WORDS.items()}
    singular_of = {v: k for k, v in PLURALS.items()}

    def noun_phrase(i: int) -> tuple[dict, int]:
        try:
            out = {"count": count_of[words[i]], "size": words[i + 1]}
            i += 2
            out["texture"] = "plain"
            if words[i] in TEXTURES:
                out["texture"] = words[i]
                i += 1
            out["color"] = words[i]
            noun = words[i + 1]
        except (KeyError, IndexError) as err:
            raise ConfigError(f"caption {caption!r} does not follow the toy-world grammar ({err}).") from err
        out["shape"] = singular_of.get(noun, noun)
        if out["size"] not in SIZES or out["color"] not in COLORS or out["shape"] not in SHAPES:
            raise ConfigError(f"caption {caption!r} does not follow the toy-world grammar.")
        return out, i + 2

    parsed, i = noun_phrase(0)
    if i >= len(words):
        raise ConfigError(f"caption {caption!r} has no verb.")
    verb = words[i]
    if verb not in ("move", "moves", "stay", "stays"):
        raise ConfigError(f"caption {caption!r} has an unknown verb {verb!r}; expected move(s) or stay(s).")
    direction = words[i + 1] if i + 1 < len(words) else None
    allowed = ("still",) if verb.startswith("stay") else ("left", "right", "up", "down")
    if direction not in allowed:
        raise ConfigError(f"caption {caption!r}: {verb!r} must be followed by one of {list(allowed)}, got {direction!r}.")
    parsed["direction"] = direction
    i += 2
    parsed["relation"] = None
    if i < len(words):
        rel = words[i]
        if rel in ("left", "right"):
            rel = f"{rel} of"
            i += 1
        if rel not in RELATIONS:
            raise ConfigError(f"caption {caption!r} has an unknown relation {rel!r}.")
        parsed["relation"] = rel
        parsed["secondary"], i = noun_phrase(i + 1)
    if i != len(words):
        raise ConfigError(f"caption {caption!r} has trailing words {words[i:]!r}.")
    return parsed
