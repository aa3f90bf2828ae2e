"""PNG sketches -> ink images at the network resolution.

A sketch image is dark strokes on a light, square canvas of any size (see
docs/INTERFACE.md, "PNG sketches"); it becomes the same float32 (res, res) ink image
in [0, 1] that rasterised strokes give.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_server.errors import BAD_INPUT, Refused
from model_server.geometry.views import RESOLUTION

MAX_PNG_SIDE = 16384


def resample_ink(ink: np.ndarray, res: int = RESOLUTION) -> np.ndarray:
    """Resample a square ink image to res x res (area-averaging when shrinking)."""
    from PIL import Image

    ink = np.asarray(ink, np.float32)
    if ink.shape == (res, res):
        return np.clip(ink, 0.0, 1.0)
    if ink.ndim != 2 or ink.shape[0] != ink.shape[1]:
        raise Refused(BAD_INPUT, f"A sketch image must be square, not {ink.shape[1]}x{ink.shape[0]} pixels.")
    method = Image.Resampling.BOX if ink.shape[0] > res else Image.Resampling.BILINEAR
    out = np.asarray(Image.fromarray(ink, mode="F").resize((res, res), method), np.float32)
    return np.clip(out, 0.0, 1.0)


def load_png_sketch(path: str | Path, res: int = RESOLUTION) -> np.ndarray:
    """Read a sketch image (dark strokes on a light, square canvas) as a res x res ink image.

    Contrast is stretched so the darkest stroke is full ink. Raises
    Refused('bad_input', ...) for missing, corrupt, non-square, blank or dark images."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise Refused(BAD_INPUT, f"The sketch image {path} does not exist.")
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_PNG_SIDE:
                raise Refused(BAD_INPUT, f"The sketch image {path.name} is too large "
                                    f"({img.size[0]}x{img.size[1]}); use at most {MAX_PNG_SIDE} pixels a side.")
            img.load()
            gray = _to_gray(img)
    except Refused:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise Refused(BAD_INPUT, f"The sketch image {path.name} is corrupt or not an image Pillow can read.") from None
    h, w = gray.shape
    if h != w:
        raise Refused(BAD_INPUT, f"The sketch image {path.name} is {w}x{h} pixels; it must be square.")
    ink = resample_ink(1.0 - gray, res)
    background = float(np.median(ink))
    if background > 0.5:
        raise Refused(BAD_INPUT,
                            f"The sketch image {path.name} is mostly dark; draw dark strokes on a light background.")
    top = float(ink.max())
    if top - background < 0.15:
        raise Refused(BAD_INPUT, f"The sketch image {path.name} is blank; it has no visible strokes.")
    return np.clip((ink - background) / (top - background), 0.0, 1.0).astype(np.float32)


def _to_gray(img) -> np.ndarray:
    """Any Pillow image -> float gray in [0, 1], transparent areas read as white paper."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, np.float64)
        return np.clip(a / (65535.0 if a.max() > 255 else 255.0), 0.0, 1.0)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(paper, rgba)
    return np.asarray(img.convert("L"), np.float64) / 255.0
