"""A picture of what each backend makes: sketch | hull | round | learned | ground truth.

Usage (from the repository root, in the server environment):

    python benchmarks/compare_figure.py --data ~/.cache/sketch2mesh/data --families mug,car \\
        [--per-family 2] [--mesh ../shared/eval-meshes/spot.obj ...] --out docs/backends.png

Each row is one shape, rebuilt from its clean front and side sketches by every backend and
rendered headless (our own ray caster, shaded by normals) from a three-quarter view above
and from a three-quarter view below, next to the ground truth. The families given should
be ones the shipped weights never saw in training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import dataset_cases, mesh_cases  # noqa: E402
from model_server.geometry.raycast import render_maps  # noqa: E402
from model_server.geometry.views import _view  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402

BACKENDS = ("hull", "round", "learned")
TILE = 192
LIGHT = np.array([0.4, 0.5, 0.77])
CAMERAS = (_view("above", (-0.55, 0.7, -0.45), (0, 0, 1), 1.0), _view("below", (0.6, 0.6, 0.5), (0, 0, 1), 1.0))


def shade(vertices: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """Grey Lambert renderings of a mesh from CAMERAS, white background."""
    maps = render_maps(vertices, faces, TILE, CAMERAS)
    out = []
    for i in range(len(CAMERAS)):
        light = np.clip(maps.normal[i] @ (LIGHT / np.linalg.norm(LIGHT)), 0.0, 1.0)
        grey = np.where(maps.mask[i] > 0.5, 0.25 + 0.7 * light, 1.0)
        out.append(np.repeat(grey[..., None], 3, axis=2))
    return out


def ink_tile(ink: np.ndarray) -> np.ndarray:
    img = Image.fromarray(((1.0 - ink) * 255).astype(np.uint8)).resize((TILE, TILE), Image.BILINEAR)
    return np.repeat((np.asarray(img, np.float32) / 255.0)[..., None], 3, axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--families", default="mug,car")
    parser.add_argument("--per-family", type=int, default=2)
    parser.add_argument("--meshes", type=Path, help="a folder of real meshes (up axis Y), all drawn")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cases = []
    if args.data:
        for family in args.families.split(","):
            cases += dataset_cases(args.data, "all", "clean", {family})[:args.per_family]
    if args.meshes:
        cases += mesh_cases(args.meshes, "y", "clean")
    rows, labels = [], []
    for index, (shape_id, load) in enumerate(cases):
        case = load(np.random.default_rng([0, index]))
        tiles = [np.concatenate([ink_tile(case.inks["front"]), ink_tile(case.inks["side"])], axis=0)]
        for backend in BACKENDS:
            result = pipeline.reconstruct_images(case.inks, backend=backend,
                                                 weights=args.weights if backend == "learned" else None)
            tiles.append(np.concatenate(shade(result.vertices, result.faces), axis=0))
        tiles.append(np.concatenate(shade(case.vertices, case.faces), axis=0))
        rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=0.6) for t in tiles], axis=1))
        labels.append(f"{case.family or 'mesh'} {shape_id}")
        print(f"{shape_id} done", file=sys.stderr)
    header = 22
    grid = np.concatenate(rows, axis=0)
    image = Image.new("RGB", (grid.shape[1], grid.shape[0] + header), "white")
    image.paste(Image.fromarray((grid * 255).round().astype(np.uint8)), (0, header))
    draw = ImageDraw.Draw(image)
    for k, title in enumerate(("sketch (front, side)",) + BACKENDS + ("ground truth",)):
        draw.text((k * (TILE + 4) + 6, 5), title, fill="black")
    for r, label in enumerate(labels):
        draw.text((6, header + r * (2 * TILE + 4) + 4), label, fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.out, optimize=True)
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
