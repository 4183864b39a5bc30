"""Turning frames and captions into model inputs.

Images go through the model's own Hugging Face image processor when its folder has one
(``preprocessor_config.json``); otherwise through :class:`ImagePreprocessor`'s documented
fallback: resize the shortest side to ``image_size`` (bicubic), centre-crop to
``image_size × image_size``, scale to [0, 1], normalise with the CLIP constants
(:data:`CLIP_MEAN`, :data:`CLIP_STD`). Captions always go through the model's own tokenizer;
a text model without one raises :class:`~vlmbrain.errors.ModelNotAvailableError`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from vlmbrain.errors import DimensionError, ModelNotAvailableError

logger = logging.getLogger("vlmbrain")

#: OpenAI CLIP normalisation constants (the fallback when a folder has no image processor).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_image(image, where: str = "image") -> np.ndarray:
    """Validate one RGB frame: ndarray (H, W, 3) uint8."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DimensionError(f"{where} must be an RGB array of shape (H, W, 3), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise DimensionError(f"{where} must be uint8 (0..255), got dtype {arr.dtype}; convert with .astype(np.uint8)")
    return arr


class ImagePreprocessor:
    """Frames ``(H, W, 3)`` uint8 → ``pixel_values`` tensor ``(n_images, 3, S, S)`` float32.

    Parameters
    ----------
    processor : callable or None
        A Hugging Face image processor (``AutoImageProcessor``); used when given.
    image_size : int, default=224
        Output side ``S`` of the fallback path.
    mean, std : tuple of 3 float
        Normalisation of the fallback path (default: CLIP's constants).
    """

    def __init__(self, processor=None, image_size: int = 224, mean=CLIP_MEAN, std=CLIP_STD):
        self.processor = processor
        self.image_size = int(image_size)
        self.mean = np.asarray(mean, np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, np.float32).reshape(1, 1, 3)

    @property
    def uses_fallback(self) -> bool:
        return self.processor is None

    def __call__(self, images: Sequence[np.ndarray], device=None) -> torch.Tensor:
        """Preprocess frames; the fallback normalises on ``device`` (uint8 crosses to the GPU, not float32)."""
        images = [check_image(im, f"frame {i}") for i, im in enumerate(images)]
        if self.processor is not None:
            out = self.processor(images=images, return_tensors="pt")["pixel_values"].float()
            return out if device is None else out.to(device)
        crops = torch.from_numpy(np.stack([self._resize_crop(im) for im in images]))  # (n, S, S, 3) uint8
        if device is not None:
            crops = crops.to(device, non_blocking=True)
        mean = torch.as_tensor(self.mean.reshape(3), device=crops.device)
        std = torch.as_tensor(self.std.reshape(3), device=crops.device)
        x = (crops.float() / 255.0 - mean) / std
        return x.permute(0, 3, 1, 2).contiguous()

    def _resize_crop(self, image: np.ndarray) -> np.ndarray:
        s = self.image_size
        h, w = image.shape[:2]
        if h == s and w == s:
            return image
        from PIL import Image

        pil = Image.fromarray(image)
        new_w, new_h = (s, int(s * h / w)) if w <= h else (int(s * w / h), s)
        pil = pil.resize((new_w, new_h), resample=Image.BICUBIC)
        left, top = (new_w - s) // 2, (new_h - s) // 2
        return np.asarray(pil.crop((left, top, left + s, top + s)))


def load_image_processor(source, local_files_only: bool, image_size: int) -> ImagePreprocessor:
    """The model's own image processor if ``source`` has one, else the documented fallback."""
    try:
        from transformers import AutoImageProcessor

        proc = AutoImageProcessor.from_pretrained(str(source), local_files_only=local_files_only)
    except (OSError, ValueError, KeyError) as err:
        logger.warning(
            "no image processor found for %s (%s); using the fallback: shortest side resized to %d, centre crop, "
            "CLIP normalisation constants",
            source,
            type(err).__name__,
            image_size,
        )
        return ImagePreprocessor(None, image_size=image_size)
    return ImagePreprocessor(proc, image_size=image_size)


def load_tokenizer(source, local_files_only: bool, vocab_size: int | None = None):
    """The model's own tokenizer; :class:`ModelNotAvailableError` when ``source`` has none.

    transformers 5 silently builds an *empty* tokenizer (a handful of special tokens) for a folder
    that has a ``config.json`` but no tokenizer files; such a tokenizer is rejected here: a real one
    covers at least half of the model's ``vocab_size``.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source), local_files_only=local_files_only)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelNotAvailableError(_no_tokenizer(source, f"{type(err).__name__}: {err}")) from err
    if vocab_size is not None and len(tok) < 0.5 * int(vocab_size):
        raise ModelNotAvailableError(
            _no_tokenizer(source, f"the tokenizer found has {len(tok)} tokens for a model vocabulary of {vocab_size}")
        )
    return tok


def _no_tokenizer(source, why: str) -> str:
    return (
        f"no tokenizer found for text model {source!s} ({why}); a text branch needs the model's own tokenizer "
        "files (tokenizer.json or vocab files) next to its weights: copy them into the folder, or download the "
        "full model with `huggingface-cli download <id>` on a machine with internet"
    )
