"""Pictures of maps and sketches, and the ``dataset-preview`` command's contact sheet.

The depth, normal and ink images here are the one way the server draws them; the contact
sheet and the training previews (:mod:`model_server.learning.logs`) both use them. They
return float RGB in [0, 1]; callers choose the background and turn them into bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np

from model_server.geometry.views import VIEWS
from model_server.learning.data.format import MESH_FAMILY, SPLITS, load_shape, read_index, read_meta

PREVIEW_TILE = 128
PREVIEW_VIEWS = (0, 1, 5)            # front, side, and an icosahedron view from above the front
LABEL_WIDTH = 150
HEADER_HEIGHT = 18


# --- Images -------------------------------------------------------------------------------------

def ink_image(ink: np.ndarray) -> np.ndarray:
    """Ink in [0, 1] (1 = darkest) as grey on white paper: 1 - ink."""
    return 1.0 - ink


def depth_image(depth: np.ndarray, mask: np.ndarray, span: tuple[float, float] | None = None,
                colormap: str | None = None, background: float = 0.0) -> np.ndarray:
    """(R, R) depth -> (R, R, 3) RGB: near = light, ``background`` off the ``mask``.

    Without ``span`` the foreground's own depth range is stretched from 1 (nearest) to 0.2
    (farthest), to show one shape's relief. With a (near, far) span, near -> 1 and far -> 0,
    clipped, so images drawn with the same span (a prediction and its ground truth) compare.
    ``colormap`` names a matplotlib colormap for the shade; None draws grey."""
    if span is None:
        if not mask.any():
            return np.full(depth.shape + (3,), background, np.float32)
        lo, hi = depth[mask].min(), depth[mask].max()
        shade = 1.0 - 0.8 * (depth - lo) / max(hi - lo, 1e-6)
    else:
        near, far = span
        shade = np.clip((far - depth) / (far - near), 0.0, 1.0)
    if colormap is None:
        rgb = np.repeat(shade[..., None], 3, axis=-1)
    else:
        import matplotlib

        rgb = matplotlib.colormaps[colormap](shade)[..., :3]
    return np.where(mask[..., None], rgb, background)


def normal_image(normal: np.ndarray, mask: np.ndarray, background: float = 0.0) -> np.ndarray:
    """(R, R, 3) unit camera-frame normals -> RGB (n + 1) / 2, ``background`` off the ``mask``."""
    return np.where(mask[..., None], 0.5 * (normal + 1.0), background).clip(0.0, 1.0)


def _bytes(image: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8, truncating (as the contact sheet always has)."""
    return (image * 255).astype(np.uint8)


# --- Contact sheet ------------------------------------------------------------------------------

Column = tuple[str, Callable[[dict[str, np.ndarray]], np.ndarray]]


def contact_sheet(folder: str | Path, count: int = 8, split: str | None = None):
    """A PIL image: per shape a row of its sketches (each style, front and side) and the
    depth, normal and mask maps of a few views, labelled with family and id."""
    from PIL import Image, ImageDraw

    entries = read_index(folder, split)[:count]
    if not entries:
        raise ValueError(f"{folder} holds no shapes{f' in split {split}' if split else ''}")
    columns = _columns(read_meta(folder))
    tile = PREVIEW_TILE
    sheet = Image.new("RGB", (LABEL_WIDTH + len(columns) * tile, HEADER_HEIGHT + len(entries) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(columns):
        draw.text((LABEL_WIDTH + c * tile + 3, 3), title, fill="black")
    for r, entry in enumerate(entries):
        shape = load_shape(folder, entry)
        top = HEADER_HEIGHT + r * tile
        for c, (_, render) in enumerate(columns):
            image = Image.fromarray(render(shape)).resize((tile, tile), Image.Resampling.BILINEAR)
            sheet.paste(image, (LABEL_WIDTH + c * tile, top))
        label = f"{entry['family']}\n{entry['id']} ({entry['split']})"
        if entry["family"] == MESH_FAMILY:
            label += f"\n{Path(entry['source']).name[:20]}"
        draw.multiline_text((6, top + 6), label, fill="black")
        draw.line([(0, top), (sheet.size[0], top)], fill=(200, 200, 200))
    return sheet


def _columns(meta: dict) -> list[Column]:
    """(title, shape -> uint8 image) for each column of the contact sheet: the dataset's
    sketch styles of its first two sketch views, then depth, normal and mask of PREVIEW_VIEWS."""
    columns: list[Column] = []
    for s, style in enumerate(meta["styles"]):
        for v, view in enumerate(meta["sketch_views"][:2]):
            columns.append((f"{style} {view}", lambda shape, s=s, v=v: _bytes(ink_image(shape["sketch"][s, v]))))
    for index in PREVIEW_VIEWS:
        name = VIEWS[index].name
        columns.append((f"depth {name}",
                        lambda shape, i=index: _bytes(depth_image(shape["depth"][i], shape["mask"][i]))))
        columns.append((f"normal {name}",
                        lambda shape, i=index: _bytes(normal_image(shape["normal"][i], shape["mask"][i]))))
        columns.append((f"mask {name}", lambda shape, i=index: (shape["mask"][i] * 255).astype(np.uint8)))
    return columns


# --- Command line: dataset-preview --------------------------------------------------------------

def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dataset-preview`` command's options."""
    parser.add_argument("data", type=Path, help="dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG contact sheet to write")
    parser.add_argument("--count", type=int, default=8, help="number of shapes (rows) (default %(default)s)")
    parser.add_argument("--split", choices=SPLITS, help="take the shapes from one split only")


def run_preview(args: argparse.Namespace) -> None:
    """Write the contact sheet PNG."""
    if args.count < 1:
        raise ValueError(f"--count must be at least 1, not {args.count}")
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must end in .png, not {args.out.name!r}")
    sheet = contact_sheet(args.data, args.count, args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"Wrote {args.out} ({sheet.size[0]}x{sheet.size[1]})")
