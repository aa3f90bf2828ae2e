"""Benchmark the hull pipeline: per-stage timings (median of repeats), silhouette IoU, watertightness.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_pipeline.py [--repeats 3] [--detail medium] [--no-examples]

Sketches: synthetic clean outline drawings (circle+circle, rectangles, an L, a mug) given
as world-space strokes, and the PNG pairs under examples/*/ (front.png, side.png, and
top.png when present). Transfer and import are measured by the server and add-on
benchmarks; this script covers the model server's own stages.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.metrics import silhouette_iou  # noqa: E402
from model_server.geometry import views  # noqa: E402
from model_server.geometry.mesh import closed_and_oriented, signed_volume  # noqa: E402
from model_server.geometry.normalize import fit_normalization  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402
from model_server.reconstruct.fusion import DETAILS  # noqa: E402
from model_server.sketch.png import load_png_sketch  # noqa: E402

STAGES = ("rasterize", "predict", "fuse", "poisson", "total")


def _circle(radius=0.6, cx=0.0, cy=0.0, n=200, sy=1.0):
    t = np.linspace(0.0, 2.0 * np.pi, n)
    return np.stack([cx + radius * np.cos(t), cy + sy * radius * np.sin(t), np.ones_like(t)], axis=1)


def _polygon(corners):
    c = np.array(list(corners) + [corners[0]], float)
    return np.concatenate([c, np.ones((len(c), 1))], axis=1)


SYNTHETIC = {
    "sphere": {"front": [_circle()], "side": [_circle()]},
    "box": {"front": [_polygon([(-0.5, -0.7), (0.5, -0.7), (0.5, 0.6), (-0.5, 0.6)])],
            "side": [_polygon([(-0.3, -0.7), (0.3, -0.7), (0.3, 0.6), (-0.3, 0.6)])]},
    "L": {"front": [_polygon([(-0.6, -0.7), (0.6, -0.7), (0.6, -0.3), (-0.2, -0.3), (-0.2, 0.7), (-0.6, 0.7)])],
          "side": [_polygon([(-0.4, -0.7), (0.4, -0.7), (0.4, 0.7), (-0.4, 0.7)])]},
    "mug": {"front": [_polygon([(-0.4, -0.6), (0.4, -0.6), (0.4, -0.3), (0.7, -0.3), (0.7, 0.3), (0.4, 0.3),
                                (0.4, 0.6), (-0.4, 0.6)]),
                      _polygon([(0.45, -0.15), (0.6, -0.15), (0.6, 0.15), (0.45, 0.15)])],
            "side": [_circle(0.4, n=100, sy=1.5)]},
}


def _cases(use_examples: bool):
    for name, strokes in SYNTHETIC.items():
        frame = fit_normalization(strokes)
        yield f"{name} (strokes)", (lambda s=strokes: pipeline.reconstruct_strokes(s, detail=DETAIL)), frame.to_canonical
    if not use_examples:
        return
    for folder in sorted((ROOT / "examples").glob("*/")):
        if not (folder / "front.png").is_file() or not (folder / "side.png").is_file():
            continue
        names = [v for v in ("front", "side", "top") if (folder / f"{v}.png").is_file()]
        for with_top in (False, True) if "top" in names else (False,):
            chosen = [v for v in names if v != "top" or with_top]
            inks = {v: load_png_sketch(folder / f"{v}.png") for v in chosen}
            label = f"{folder.name} (png{'+top' if with_top else ''})"
            yield label, (lambda i=inks: pipeline.reconstruct_images(i, detail=DETAIL)), (lambda v: v)


def main(argv: list[str] | None = None) -> int:
    global DETAIL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detail", choices=tuple(DETAILS), default="medium")
    parser.add_argument("--no-examples", action="store_true")
    args = parser.parse_args(argv)
    DETAIL = args.detail

    header = f"{'sketch':<26}" + "".join(f"{s:>10}" for s in STAGES) + f"{'faces':>8}{'IoU front':>10}{'IoU side':>9}{'closed':>7}"
    print(f"detail={args.detail}, median of {args.repeats} runs, seconds")
    print(header)
    print("-" * len(header))
    all_ious, totals = [], []
    for label, run, to_canonical in _cases(not args.no_examples):
        runs = [run() for _ in range(args.repeats)]
        result = runs[-1]
        median = {s: statistics.median(r.timings[s] for r in runs) for s in STAGES}
        canonical = to_canonical(result.vertices)
        ious = [silhouette_iou(canonical, result.faces, result.silhouettes[v], views.INPUT_VIEWS[v]) for v in ("front", "side")]
        closed = closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
        all_ious += ious
        totals.append(median["total"])
        print(f"{label:<26}" + "".join(f"{median[s]:>10.3f}" for s in STAGES)
              + f"{len(result.faces):>8}{ious[0]:>10.3f}{ious[1]:>9.3f}{'yes' if closed else 'NO':>7}", flush=True)
    print("-" * len(header))
    print(f"median total {statistics.median(totals):.3f} s, max {max(totals):.3f} s; "
          f"mean silhouette IoU {np.mean(all_ious):.3f}, min {min(all_ious):.3f}")
    return 0


DETAIL = "medium"

if __name__ == "__main__":
    raise SystemExit(main())
