"""Benchmark the round backend against its targets: hull | round | learned side by side, one table.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_round.py [--quick] [--per-family 10] [--backends hull,round,learned]
        [--roundness 1] [--data ~/.cache/sketch2mesh/data] [--meshes ../shared/eval-meshes]

Every sketch is a clean front and side line drawing, rebuilt by each backend at medium
detail on the CPU, without Fit to strokes, and scored by the evaluation harness
(``evaluation.evaluate``) against its ground truth. Sets:

- held-out: the procedural families the shipped network was trained without (``--held-out``,
  default mug,car), ``--per-family`` shapes each, read from ``--data`` when that dataset is
  there (its whole index, as ``bench_learned.py`` reads it), else generated into a
  temporary folder by the dataset code (seed 0; nothing is trained);
- meshes: the real models in ``--meshes`` (Y up), sketched from their silhouettes by the
  dataset's own sketch code (``evaluate.mesh_cases``).

Per set and backend: how many sketches built; over the sketches every backend built, mean
Chamfer (and its ratio to the hull's), volumetric IoU and normal consistency (and their
difference to the hull's), the silhouette IoU of the result against the filled input
silhouettes of front and side (and its difference to the hull's), and the median
reconstruct time (and its ratio to the hull's). Each backend first rebuilds one sketch to
warm up (imports, weights, caches); then every sketch is rebuilt by every backend in turn,
the order rotating from sketch to sketch, so all see the same machine load. The round
backend's targets are printed beside its numbers.

``--quick`` takes 2 shapes per family and every third mesh: 2 to 3 minutes on 2 shared
cores; the default (29 sketches) 6 to 10. The time target is the noisiest: on a loaded
machine its ratio moves by several hundredths from run to run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import (Loader, dataset_cases, evaluate_backends, mesh_cases,  # noqa: E402
                                              parse_backends)
from model_server.geometry.views import RESOLUTION  # noqa: E402
from model_server.learning.data import generate as dataset  # noqa: E402
from model_server.learning.data.format import INDEX_FILE  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402
from model_server.reconstruct.backends import DEFAULT_ROUNDNESS, check_roundness  # noqa: E402

DETAIL = "medium"
STYLE = "clean"
SEED = 0
QUICK_PER_FAMILY = 2
QUICK_MESH_STRIDE = 3                 # --quick keeps every third mesh
DEFAULT_DATA = Path.home() / ".cache" / "sketch2mesh" / "data"

# The targets for the round backend, against the hull on the same sketches.
CHAMFER_RATIO = 0.8       # round's mean Chamfer at most this times the hull's
VIOU_GAIN = 0.05          # round's mean volumetric IoU at least the hull's plus this
SILHOUETTE_SLACK = 0.005  # round's mean silhouette IoU (front and side) within this of the hull's
TIME_RATIO = 1.1          # round's median reconstruct time at most this times the hull's


@dataclass
class Stats:
    """One backend on one set: built counts, then means and median time over the sketches
    that every backend built."""

    sketches: int
    built: int
    chamfer: float
    volume_iou: float
    normal_consistency: float
    silhouette_front: float
    silhouette_side: float
    time_s: float


def held_out_cases(args: argparse.Namespace, scratch: Path) -> tuple[list[tuple[str, Loader]], str]:
    """The held-out families' sketches and where they came from."""
    families = [f.strip() for f in args.held_out.split(",") if f.strip()]
    if args.data is not None and (args.data / INDEX_FILE).is_file():
        cases = [case for family in families
                 for case in dataset_cases(args.data, "all", STYLE, {family})[:args.per_family]]
        return cases, f"read from {args.data}"
    plan = dataset.make_plan(args.per_family * len(families), families, None, "z", SEED, RESOLUTION)
    dataset.generate(scratch / "held-out", plan, workers=1, progress=False)
    return dataset_cases(scratch / "held-out", "all", STYLE), f"generated, seed {SEED}"


def run_cases(sets: dict[str, list[tuple[str, Loader]]], backends: tuple[str, ...],
              roundness: float) -> dict[str, dict[str, list[dict]]]:
    """set -> backend -> report rows, every backend on every sketch, after one warm-up each."""
    _, first_load = next(case for cases in sets.values() for case in cases)
    inks = first_load(np.random.default_rng([SEED, 0])).inks
    for backend in backends:
        pipeline.reconstruct_images(inks, backend=backend, detail=DETAIL, roundness=roundness)
    out: dict[str, dict[str, list[dict]]] = {}
    index = 0
    for name, cases in sets.items():
        out[name] = {backend: [] for backend in backends}
        for shape_id, load in cases:
            turn = index % len(backends)
            order = backends[turn:] + backends[:turn]
            rows = evaluate_backends(shape_id, load, order, DETAIL, "cpu", np.random.default_rng([SEED, index]),
                                     roundness=roundness)
            for backend in backends:
                out[name][backend].append(rows[backend])
            label = f"{rows[backends[0]].get('family', '')}/{shape_id}"
            print(f"  {label}: " + ", ".join(_progress(b, rows[b]) for b in backends), file=sys.stderr, flush=True)
            index += 1
    return out


def _progress(backend: str, row: dict) -> str:
    """One backend's result on one sketch, for the progress lines: Chamfer and time, and
    which backend's surface it is when the pipeline fell back to another."""
    if not row["ok"]:
        return f"{backend} FAILED: {row['error']}"
    fallback = f", {row['built_by']}'s surface" if row["built_by"] != backend else ""
    return f"{backend} {row['chamfer']:.4f} ({row['time_s']:.1f} s{fallback})"


def stats(rows: dict[str, list[dict]]) -> dict[str, Stats]:
    """backend -> Stats of one set's rows (backend -> rows in sketch order)."""
    backends = list(rows)
    count = len(rows[backends[0]])
    common = [i for i in range(count) if all(rows[b][i]["ok"] for b in backends)]

    def mean(backend: str, key: str) -> float:
        return float(np.mean([rows[backend][i][key] for i in common])) if common else float("nan")

    return {b: Stats(count, sum(row["ok"] for row in rows[b]), mean(b, "chamfer"), mean(b, "volume_iou"),
                     mean(b, "normal_consistency"), mean(b, "silhouette_iou_front"), mean(b, "silhouette_iou_side"),
                     statistics.median(rows[b][i]["time_s"] for i in common) if common else float("nan"))
            for b in backends}


def targets(round_: Stats, hull: Stats) -> dict[str, bool]:
    """Which of the round backend's targets it meets against the hull on one set."""
    return {
        "chamfer": round_.chamfer <= CHAMFER_RATIO * hull.chamfer,
        "volume_iou": round_.volume_iou >= hull.volume_iou + VIOU_GAIN,
        "normal_consistency": round_.normal_consistency >= hull.normal_consistency,
        "built": round_.built == round_.sketches,
        "silhouette": max(abs(round_.silhouette_front - hull.silhouette_front),
                          abs(round_.silhouette_side - hull.silhouette_side)) <= SILHOUETTE_SLACK,
        "time": round_.time_s <= TIME_RATIO * hull.time_s,
    }


HEADINGS = ("set", "backend", "built", "Chamfer", "x hull", "vIoU", "- hull", "NC", "- hull",
            "sIoU f", "sIoU s", "- hull f/s", "median s", "x hull")
TARGET_ROW = ("target", "round", "all", "", f"<= {CHAMFER_RATIO:.2f}", "", f">= +{VIOU_GAIN:.3f}", "", ">= +0.000",
              "", "", f"within {SILHOUETTE_SLACK:.3f}", "", f"<= {TIME_RATIO:.2f}")


def table(results: dict[str, dict[str, list[dict]]]) -> tuple[list[str], dict[str, bool]]:
    """The table's lines, and which targets round meets on all sketches together."""
    sets = dict(results)
    sets["all"] = {b: [row for rows in results.values() for row in rows[b]] for b in next(iter(results.values()))}
    compare = all("hull" in rows and "round" in rows for rows in sets.values())
    lines = [" | ".join(HEADINGS), " | ".join("---" for _ in HEADINGS)]
    if compare:
        lines.append(" | ".join(TARGET_ROW))
    met_all: dict[str, bool] = {}
    for name, rows in sets.items():
        by_backend = stats(rows)
        hull = by_backend.get("hull")
        met = targets(by_backend["round"], hull) if compare else {}
        if name == "all":
            met_all = met
        for backend, s in by_backend.items():
            marks = met if backend == "round" else {}
            versus = ["-"] * 5
            if hull is not None and backend != "hull":
                versus = [f"{s.chamfer / hull.chamfer:.2f}", f"{s.volume_iou - hull.volume_iou:+.3f}",
                          f"{s.normal_consistency - hull.normal_consistency:+.3f}",
                          f"{s.silhouette_front - hull.silhouette_front:+.3f}/"
                          f"{s.silhouette_side - hull.silhouette_side:+.3f}",
                          f"{s.time_s / hull.time_s:.2f}"]
            lines.append(" | ".join([
                name, backend, _marked(f"{s.built}/{s.sketches}", marks.get("built")),
                f"{s.chamfer:.4f}", _marked(versus[0], marks.get("chamfer")),
                f"{s.volume_iou:.3f}", _marked(versus[1], marks.get("volume_iou")),
                f"{s.normal_consistency:.3f}", _marked(versus[2], marks.get("normal_consistency")),
                f"{s.silhouette_front:.3f}", f"{s.silhouette_side:.3f}", _marked(versus[3], marks.get("silhouette")),
                f"{s.time_s:.2f}", _marked(versus[4], marks.get("time"))]))
    return lines, met_all


def _marked(text: str, met: bool | None) -> str:
    """A cell with its target's verdict beside it (none where no target applies)."""
    return text if met is None else f"{text} {'ok' if met else 'MISS'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="dataset to read the held-out shapes from, when it is there (default %(default)s)")
    parser.add_argument("--meshes", type=Path, default=ROOT.parent / "shared" / "eval-meshes")
    parser.add_argument("--held-out", default="mug,car", help="families the shipped weights were trained without")
    parser.add_argument("--per-family", type=int, default=10, help="held-out shapes per family (default %(default)s)")
    parser.add_argument("--backends", type=parse_backends, default="hull,round,learned",
                        help="comma-separated, compared side by side (default %(default)s)")
    parser.add_argument("--roundness", type=float, default=DEFAULT_ROUNDNESS,
                        help="the round backend's (default %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_PER_FAMILY} shapes per family and one mesh in {QUICK_MESH_STRIDE} (2 to 3 minutes)")
    args = parser.parse_args(argv)
    check_roundness(args.roundness)
    if args.quick:
        args.per_family = min(args.per_family, QUICK_PER_FAMILY)
    if args.per_family < 1:
        parser.error("--per-family must be at least 1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        held_out, origin = held_out_cases(args, Path(scratch))
        meshes = mesh_cases(args.meshes, "y", STYLE) if args.meshes.is_dir() else []
        meshes = meshes[::QUICK_MESH_STRIDE] if args.quick else meshes
        sets = {name: cases for name, cases in (("held-out", held_out), ("meshes", meshes)) if cases}
        results = run_cases(sets, args.backends, args.roundness)
    lines, met = table(results)
    print(f"## {' | '.join(args.backends)}: {DETAIL} detail, CPU, {STYLE} front and side sketches, no Fit to strokes, "
          f"roundness {args.roundness:g}")
    print(f"held-out: {args.held_out} ({args.per_family} each, {origin}); "
          f"meshes: {', '.join(shape_id for shape_id, _ in meshes) or 'none'}\n")
    print("\n".join(lines))
    print("\nMeans and median times over the sketches every backend built; x hull: ratio to the hull's, "
          "- hull: difference to the hull's; sIoU: against the filled input silhouettes.")
    if met:
        missed = [key for key, ok in met.items() if not ok]
        print(f"round meets {len(met) - len(missed)} of {len(met)} targets on all sketches"
              + (f" (missed: {', '.join(missed)})." if missed else "."))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
