"""The toy world: a procedural captioned movie and small, really trained CLIP / METER models.

>>> from vlmbrain.toyworld import generate_movie
>>> movie = generate_movie(n_runs=1, run_length=30, seed=0)
>>> movie.frames.shape
(30, 64, 64, 3)
"""

from vlmbrain.toyworld.movie import ATTRIBUTE_COLUMNS, ToyMovie, generate_movie, image_attributes
from vlmbrain.toyworld.render import render_scene
from vlmbrain.toyworld.scenes import Scene, caption_scene, parse_caption, sample_scene, vocabulary

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "Scene",
    "ToyMovie",
    "caption_scene",
    "generate_movie",
    "image_attributes",
    "parse_caption",
    "render_scene",
    "sample_scene",
    "vocabulary",
]
