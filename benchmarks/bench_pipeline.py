"""Benchmark the pipeline per backend, side by side: stage timings (median of repeats), silhouette IoU, watertightness.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_pipeline.py [--repeats 3] [--detail medium] [--no-examples] [--backends hull,round,learned]
    python benchmarks/bench_pipeline.py --robustness [--detail medium] [--backends hull,round,learned]

Every sketch is rebuilt by each backend of ``--backends`` (default hull, round, learned) in
turn, one row per backend, so the backends read side by side.

Sketches: synthetic clean outline drawings (circle+circle, rectangles, an L, a mug) given
as world-space strokes, and the PNG pairs under examples/*/ (front.png, side.png, and
top.png when present). Transfer and import are measured by the server and add-on
benchmarks; this script covers the model server's own stages.

``--robustness`` instead draws procedural test shapes (fixed seeds) the way artists do and
scores each drawing against the shape's ground truth. The front and side outlines are
traced from the ground truth's ray-cast silhouettes, in the canonical frame, so the world
frame the pipeline answers in is the ground truth's. Variants: clean; sloppy (hatching
and creases inside, the outline in overlapping pieces with overshoots, gaps of up to 3%
of the size, drawn twice, a stray dot: ``tests/model_server/sloppy.py``'s ``sloppy_drawing``);
thin-part (parts narrower than ``THIN_WIDTH`` drawn as single centre lines, the rest as
its outline; only shapes that have such parts); mismatched-height (the side view squashed
vertically by ``HEIGHT_SCALE`` about its base); one-view (the front alone). Per drawing and
backend: built or refused, silhouette IoU against the ground truth's front and side,
Chamfer to the ground truth, total time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy import ndimage  # noqa: E402

from model_server.errors import Refused  # noqa: E402
from model_server.evaluation.evaluate import parse_backends  # noqa: E402
from model_server.evaluation.metrics import chamfer, sample_surface, silhouette_iou  # noqa: E402
from model_server.geometry import views  # noqa: E402
from model_server.geometry.mesh import closed_and_oriented, signed_volume  # noqa: E402
from model_server.geometry.normalize import fit_normalization  # noqa: E402
from model_server.geometry.raycast import render_silhouette  # noqa: E402
from model_server.learning.data.shapes import make_shape  # noqa: E402
from model_server.learning.data.lines import trace_chains  # noqa: E402
sys.path.insert(0, str(ROOT / "tests" / "model_server"))   # the tests' sloppy drawings
from sloppy import outline_from_mask, sloppy_drawing  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402
from model_server.reconstruct.fusion import DETAILS  # noqa: E402
from model_server.sketch.png import load_png_sketch  # noqa: E402
from model_server.sketch.silhouette import disk  # noqa: E402

STAGES = ("rasterize", "predict", "fuse", "poisson", "snap", "trust", "refine", "total")


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


Case = tuple[str, Callable[[str], pipeline.Result], Callable[[np.ndarray], np.ndarray]]


def _cases(use_examples: bool, detail: str) -> Iterator[Case]:
    """(label, run(backend) -> Result, world -> canonical vertices) per sketch."""
    for name, strokes in SYNTHETIC.items():
        frame = fit_normalization(strokes)
        yield (f"{name} (strokes)",
               lambda backend, s=strokes: pipeline.reconstruct_strokes(s, backend=backend, detail=detail),
               frame.to_canonical)
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
            yield (label, lambda backend, i=inks: pipeline.reconstruct_images(i, backend=backend, detail=detail),
                   lambda v: v)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--detail", choices=tuple(DETAILS), default="medium")
    parser.add_argument("--no-examples", action="store_true")
    parser.add_argument("--backends", type=parse_backends, default="hull,round,learned",
                        help="comma-separated, compared side by side (default %(default)s)")
    parser.add_argument("--robustness", action="store_true",
                        help="score sloppy, thin-part, mismatched-height and one-view drawings of test shapes instead")
    args = parser.parse_args(argv)
    if args.robustness:
        return robustness(args.detail, args.backends)

    header = (f"{'sketch':<26}{'backend':<9}" + "".join(f"{s:>9}" for s in STAGES)
              + f"{'faces':>8}{'IoU front':>10}{'IoU side':>9}{'closed':>7}")
    print(f"{' | '.join(args.backends)}: detail={args.detail}, median of {args.repeats} runs, seconds")
    print(header)
    print("-" * len(header))
    ious: dict[str, list[float]] = {backend: [] for backend in args.backends}
    totals: dict[str, list[float]] = {backend: [] for backend in args.backends}
    for label, run, to_canonical in _cases(not args.no_examples, args.detail):
        for backend in args.backends:
            runs = [run(backend) for _ in range(args.repeats)]
            result = runs[-1]
            median = {s: statistics.median(r.timings[s] for r in runs) for s in STAGES}
            canonical = to_canonical(result.vertices)
            pair = [silhouette_iou(canonical, result.faces, result.silhouettes[v], views.INPUT_VIEWS[v])
                    for v in ("front", "side")]
            closed = closed_and_oriented(result.faces) and signed_volume(result.vertices, result.faces) > 0
            ious[backend] += pair
            totals[backend].append(median["total"])
            print(f"{label:<26}{backend:<9}" + "".join(f"{median[s]:>9.3f}" for s in STAGES)
                  + f"{len(result.faces):>8}{pair[0]:>10.3f}{pair[1]:>9.3f}{'yes' if closed else 'NO':>7}", flush=True)
    print("-" * len(header))
    for backend in args.backends:
        print(f"{backend:<8} median total {statistics.median(totals[backend]):.3f} s, "
              f"max {max(totals[backend]):.3f} s; "
              f"mean silhouette IoU {np.mean(ious[backend]):.3f}, min {min(ious[backend]):.3f}")
    return 0


# --- Robustness ------------------------------------------------------------------------------------

ROBUSTNESS_SHAPES = (("chair", 1), ("table", 0), ("airplane", 0), ("lathe", 4),   # lathe 4 is a lamp
                     ("quadruped", 0), ("humanoid", 0), ("mug", 0), ("car", 0))
VARIANTS = ("clean", "sloppy", "thin-part", "mismatched-height", "one-view")
TRACE_RES = 512         # ground-truth silhouettes are traced at this resolution
SCORE_RES = views.RESOLUTION
THIN_WIDTH = 0.08       # canonical units (4% of the frame): narrower parts are drawn as single lines
MIN_THIN_LENGTH = 0.06  # ... when their centre line is at least this long
HEIGHT_SCALE = 0.93     # the side view's height against the front's in the mismatched-height variant
SURFACE_SAMPLES = 20_000


def robustness(detail: str, backends: tuple[str, ...]) -> int:
    """Print the robustness tables: per variant one row per shape and backend, then a summary."""
    print(f"robustness: {len(ROBUSTNESS_SHAPES)} procedural shapes, detail={detail}, {' | '.join(backends)}; IoU: "
          f"silhouette IoU against the ground truth's; Chamfer: to the ground truth, canonical frame ([-1, 1]); "
          f"time: total s")
    rows: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for family, seed in ROBUSTNESS_SHAPES:
        vertices, faces = make_shape(family, np.random.default_rng(seed))
        truth = {view: render_silhouette(vertices, faces, views.INPUT_VIEWS[view], SCORE_RES) for view in ("front", "side")}
        truth_points = sample_surface(vertices, faces, SURFACE_SAMPLES, np.random.default_rng(0))[0]
        drawings = robustness_drawings(vertices, faces, np.random.default_rng(seed))
        for variant in VARIANTS:
            for backend in backends:
                row = {"shape": f"{family} #{seed}", "backend": backend}
                if drawings[variant] is not None:
                    row.update(_score(drawings[variant], detail, backend, truth, truth_points))
                rows[variant].append(row)
                print(f"  {row['shape']:<14}{variant:<19}{backend:<9}{_status(row)}", file=sys.stderr, flush=True)
    for variant in VARIANTS:
        _print_variant(variant, rows[variant])
    _print_summary(rows, backends)
    return 0


def robustness_drawings(vertices: np.ndarray, faces: np.ndarray,
                        rng: np.random.Generator) -> dict[str, dict[str, list[np.ndarray]] | None]:
    """Each variant's strokes (view -> (N, 3) strokes in the canonical frame), None where it does not apply."""
    masks = {view: render_silhouette(vertices, faces, views.INPUT_VIEWS[view], TRACE_RES) for view in ("front", "side")}
    clean = {view: outline_from_mask(mask) for view, mask in masks.items()}
    thin = {view: thin_part_strokes(mask) for view, mask in masks.items()}
    side_base = min(float(s[:, 1].min()) for s in clean["side"])
    squashed = [np.column_stack([s[:, 0], side_base + HEIGHT_SCALE * (s[:, 1] - side_base), s[:, 2]]) for s in clean["side"]]
    return {
        "clean": clean,
        "sloppy": {view: sloppy_drawing(strokes, rng, gap=0.03, chance=1.0) for view, strokes in clean.items()},
        "thin-part": ({view: thin[view] or clean[view] for view in clean}
                      if any(thin.values()) else None),
        "mismatched-height": {"front": clean["front"], "side": squashed},
        "one-view": {"front": clean["front"]},
    }


def thin_part_strokes(mask: np.ndarray) -> list[np.ndarray] | None:
    """A silhouette drawn with its thin parts as single lines: the outline of what an opening
    by a disk of diameter THIN_WIDTH keeps, plus the centre lines (a thinning) of the parts it
    removes, run on into the kept part a little so they meet its outline. None when the mask
    has no part narrower than THIN_WIDTH with a centre line of MIN_THIN_LENGTH or more."""
    res = mask.shape[0]
    pixel = 2.0 * views.CANVAS_EXTENT / res
    radius = max(1, int(round(0.5 * THIN_WIDTH / pixel)))
    kept = ndimage.binary_opening(mask, disk(radius))
    thin = mask & ~kept
    reach = ndimage.binary_dilation(thin, disk(radius + 2)) & mask
    centre = _thinning(reach) & ndimage.binary_dilation(thin, disk(2))
    lines = []
    for chain in trace_chains(centre):
        if len(chain) * pixel < MIN_THIN_LENGTH:
            continue
        u, v = views.pixel_to_plane(chain[:, 0], chain[:, 1], views.CANVAS_EXTENT, res)
        lines.append(np.stack([u, v, np.ones_like(u)], axis=1))
    if not lines:
        return None
    return outline_from_mask(kept) + lines


def _thinning(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: a one-pixel-wide centre line of each region (bool, same shape)."""
    img = np.pad(mask, 1).astype(np.uint8)
    while True:
        changed = False
        for step in (0, 1):
            c = img[1:-1, 1:-1]
            p2, p3, p4, p5 = img[:-2, 1:-1], img[:-2, 2:], img[1:-1, 2:], img[2:, 2:]
            p6, p7, p8, p9 = img[2:, 1:-1], img[2:, :-2], img[1:-1, :-2], img[:-2, :-2]
            ring = (p2, p3, p4, p5, p6, p7, p8, p9, p2)
            count = sum(p.astype(np.int32) for p in ring[:-1])
            turns = sum(((a == 0) & (b == 1)).astype(np.int32) for a, b in zip(ring[:-1], ring[1:]))
            if step == 0:
                side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                side = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (c == 1) & (count >= 2) & (count <= 6) & (turns == 1) & side
            if remove.any():
                c[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def _score(strokes: dict[str, list[np.ndarray]], detail: str, backend: str, truth: dict[str, np.ndarray],
           truth_points: np.ndarray) -> dict:
    """Reconstruct one drawing with ``backend``; built or why not, IoUs, Chamfer and time."""
    try:
        result = pipeline.reconstruct_strokes(strokes, backend=backend, detail=detail)
    except Refused as err:
        return {"built": False, "why": f"refused: {err.message}"}
    except Exception as err:  # a benchmark reports a crash and goes on
        return {"built": False, "why": f"error: {type(err).__name__}: {err}"}
    points = sample_surface(result.vertices, result.faces, SURFACE_SAMPLES, np.random.default_rng(0))[0]
    return {"built": True, "time": result.timings["total"], "chamfer": chamfer(points, truth_points),
            **{f"iou {view}": silhouette_iou(result.vertices, result.faces, truth[view], views.INPUT_VIEWS[view])
               for view in truth}}


def _status(row: dict) -> str:
    if "built" not in row:
        return "n/a"
    if not row["built"]:
        return row["why"]
    return (f"IoU {row['iou front']:.3f} / {row['iou side']:.3f}, Chamfer {row['chamfer']:.4f}, "
            f"{row['time']:.2f} s")


def _print_variant(variant: str, rows: list[dict]) -> None:
    header = (f"{'shape':<16}{'backend':<9}{'built':>6}{'IoU front':>11}{'IoU side':>10}{'Chamfer':>10}{'time s':>8}"
              "  why not")
    print(f"\n{variant}\n{header}\n{'-' * len(header)}")
    for row in rows:
        if row.get("built"):
            print(f"{row['shape']:<16}{row['backend']:<9}{'yes':>6}{row['iou front']:>11.3f}{row['iou side']:>10.3f}"
                  f"{row['chamfer']:>10.4f}{row['time']:>8.2f}")
        else:
            print(f"{row['shape']:<16}{row['backend']:<9}{'n/a' if 'built' not in row else 'NO':>6}{'':>39}  "
                  f"{row.get('why', '')}")


def _print_summary(rows: dict[str, list[dict]], backends: tuple[str, ...]) -> None:
    """Per variant and backend: how many built, mean IoUs and Chamfer, Chamfer against the
    same backend's clean drawings of the same shapes, median total time."""
    header = (f"{'variant':<19}{'backend':<9}{'built':>10}{'IoU front':>11}{'IoU side':>10}{'Chamfer':>10}"
              f"{'vs clean':>10}{'median s':>10}")
    print(f"\nsummary (means over the shapes built)\n{header}\n{'-' * len(header)}")
    clean = {(row["shape"], row["backend"]): row for row in rows["clean"] if row.get("built")}
    for variant in VARIANTS:
        for backend in backends:
            tried = [row for row in rows[variant] if "built" in row and row["backend"] == backend]
            built = [row for row in tried if row["built"]]
            share = f"{len(built)}/{len(tried)}" + (f" {100 * len(built) // len(tried)}%" if tried else "")
            if not built:
                print(f"{variant:<19}{backend:<9}{share:>10}")
                continue
            both = [row for row in built if (row["shape"], backend) in clean]
            relative = (sum(row["chamfer"] for row in both)
                        / sum(clean[row["shape"], backend]["chamfer"] for row in both) - 1.0
                        if both else float("nan"))
            print(f"{variant:<19}{backend:<9}{share:>10}{np.mean([r['iou front'] for r in built]):>11.3f}"
                  f"{np.mean([r['iou side'] for r in built]):>10.3f}{np.mean([r['chamfer'] for r in built]):>10.4f}"
                  f"{100 * relative:>+9.1f}%{statistics.median(r['time'] for r in built):>10.2f}")
    print("vs clean: the variant's summed Chamfer over the same backend's clean sum, on the shapes both built "
          "(target for sloppy: within +15%); median s: the backend's median total time")


if __name__ == "__main__":
    raise SystemExit(main())
