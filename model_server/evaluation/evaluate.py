"""Evaluation harness: reconstruct shapes from their sketches and measure them against the truth.

``python -m model_server evaluate --data DIR | --meshes FOLDER [--backend hull,round,learned]
[--roundness R] [--weights W] --report R.json``

Every shape is reconstructed from its front and side sketches through the same pipeline
as the server (``pipeline.reconstruct_images``), in the canonical frame, and compared with
its ground-truth mesh: Chamfer distance, volumetric IoU, normal consistency, F-score at 1%
and 2% of the frame size, silhouette IoU against the input sketch, and time (see
:mod:`model_server.evaluation.metrics`). A dataset (``--data``) supplies sketches and meshes; a folder
of meshes (``--meshes``) is normalised into the canonical frame and sketched here in the
chosen style. ``--backend`` may name several backends: each shape is then loaded once and
rebuilt by each in turn from the same sketches, scored against the same ground-truth
samples, and the table shows them side by side, with each one's Chamfer and time as a
ratio to the hull's and its other measures as a difference to the hull's. A shape that
fails is recorded with its error and the run goes on; only problems with the whole run
(an unavailable backend, a bad option) stop it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from model_server.device import DEVICES, resolve_device, use_cpu_threads
from model_server.errors import BAD_REQUEST, UNAVAILABLE, Refused
from model_server.evaluation import metrics
from model_server.fit.limits import check_iterations
from model_server.geometry.mesh import closed_and_oriented
from model_server.geometry.views import INPUT_VIEWS
from model_server.learning.data import meshes
from model_server.reconstruct import pipeline
from model_server.reconstruct.backends import BACKENDS, DEFAULT_BACKEND, DEFAULT_ROUNDNESS, check_roundness
from model_server.reconstruct.fusion import DETAILS

SKETCH_VIEWS = ("front", "side")          # the views every shape is reconstructed from
SPLITS = ("train", "val", "test", "all")
RUN_ERRORS = (UNAVAILABLE, BAD_REQUEST)  # refusals that no other shape would escape

# Columns of the report and the table: key, heading, format.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("chamfer", "Chamfer", "{:.4f}"),
    ("volume_iou", "vIoU", "{:.3f}"),
    ("normal_consistency", "NC", "{:.3f}"),
    ("f_score_1", "F@1%", "{:.3f}"),
    ("f_score_2", "F@2%", "{:.3f}"),
    ("silhouette_iou_front", "sIoU-f", "{:.3f}"),
    ("silhouette_iou_side", "sIoU-s", "{:.3f}"),
    ("time_s", "time s", "{:.2f}"),
)
RATIO_COLUMNS = frozenset({"chamfer", "time_s"})   # compared with the hull's as a ratio; the rest as a difference
BASELINE = "hull"                                   # what the other backends are compared with


def parse_backends(text: str) -> tuple[str, ...]:
    """``--backend``'s value: one backend, or several, comma-separated, each named once."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in BACKENDS for name in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"give one or more of {', '.join(BACKENDS)}, comma-separated, "
                                         f"each once; not {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``evaluate`` command's options."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="dataset folder (from `python -m model_server dataset`)")
    source.add_argument("--meshes", type=Path,
                        help="folder of meshes (OBJ, PLY, OFF, STL, GLB, glTF) to sketch and rebuild")
    parser.add_argument("--backend", type=parse_backends, default=DEFAULT_BACKEND, metavar="NAME[,NAME...]",
                        help=f"one of {', '.join(BACKENDS)}, or several comma-separated to compare them side "
                             "by side (default %(default)s)")
    parser.add_argument("--roundness", type=float, default=DEFAULT_ROUNDNESS, metavar="R",
                        help="the round backend's cross-sections, from the hull's rectangles (0) to ellipses (1) "
                             "(default %(default)s)")
    parser.add_argument("--weights", type=Path, help="the learned backend's checkpoint (default: the shipped weights)")
    parser.add_argument("--families", help="comma-separated dataset families to evaluate (default: all)")
    parser.add_argument("--refine", type=int, default=0, metavar="ITERATIONS", help="Fit to strokes iterations (0 skips)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="dataset split to evaluate (default %(default)s)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N shapes")
    parser.add_argument("--style", default="clean", help="sketch style to reconstruct from (default %(default)s)")
    parser.add_argument("--detail", choices=tuple(DETAILS), default="medium")
    parser.add_argument("--up", choices=meshes.UP_AXES, default="z",
                        help="up axis of the --meshes files (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the surface sampling (default %(default)s)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--report", type=Path, required=True, help="JSON report to write")


def run(args: argparse.Namespace) -> None:
    """Evaluate every selected shape, write the JSON report and print the table."""
    check_iterations(args.refine, "--refine")
    check_roundness(args.roundness)
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1.")
    if args.weights is not None and "learned" not in args.backend:
        raise ValueError("--weights is for the learned backend; add --backend learned (or a list that has it).")
    from tqdm import tqdm

    device = resolve_device(args.device)
    use_cpu_threads(device)
    if args.data:
        families = {f.strip() for f in args.families.split(",") if f.strip()} if args.families else None
        cases = dataset_cases(args.data, args.split, args.style, families)
    else:
        cases = mesh_cases(args.meshes, args.up, args.style)
    cases = cases[:args.limit]
    if not cases:
        raise ValueError(f"no shapes to evaluate in {args.data or args.meshes}")
    rows: dict[str, list[dict]] = {backend: [] for backend in args.backend}
    with tqdm(total=len(cases), unit="shape", desc="evaluate", leave=False) as bar:
        for index, (shape_id, load) in enumerate(cases):
            rng = np.random.default_rng([args.seed, index])
            for backend, row in evaluate_backends(shape_id, load, args.backend, args.detail, device, rng, args.refine,
                                                  args.weights, args.roundness).items():
                rows[backend].append(row)
            bar.update()
    report = {"config": _config(args, device), "count": len(cases),
              "backends": {backend: summary(rows[backend], bool(args.refine)) for backend in args.backend}}
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(format_table(report))
    print(f"Wrote {args.report}")


# --- Cases: (id, loader) pairs; loading happens inside the per-shape error handling ---------

@dataclass
class Case:
    """One shape to evaluate: its input sketches and its ground truth, in the canonical frame."""

    inks: dict[str, np.ndarray]    # view -> float32 ink (res, res) in [0, 1]
    vertices: np.ndarray           # ground truth (V, 3)
    faces: np.ndarray              # ground truth (F, 3)
    source: str = ""
    family: str = ""


Loader = Callable[[np.random.Generator], Case]   # the generator draws any random sketch noise


def dataset_cases(folder: Path, split: str, style: str,
                  families: set[str] | None = None) -> list[tuple[str, Loader]]:
    """The dataset's shapes of ``split`` (and of ``families``, when given) with the sketches
    of ``style``; nothing is read until a loader is called."""
    from model_server.learning.data.format import load_shape, read_index, read_meta

    meta = read_meta(folder)
    if style not in meta["styles"]:
        raise ValueError(f"--style must be one of this dataset's styles ({', '.join(meta['styles'])}), not {style!r}")
    style_index = meta["styles"].index(style)
    view_index = {view: meta["sketch_views"].index(view) for view in SKETCH_VIEWS}

    def loader(entry: dict) -> Loader:
        def load(rng: np.random.Generator) -> Case:
            shape = load_shape(folder, entry)
            sketch = shape["sketch"][style_index]
            return Case({view: sketch[i] for view, i in view_index.items()}, shape["vertices"], shape["faces"],
                        entry.get("source", ""), entry.get("family", ""))
        return load

    entries = read_index(folder, None if split == "all" else split)
    entries = [entry for entry in entries if families is None or entry["family"] in families]
    return [(str(entry["id"]), loader(entry)) for entry in entries]


def mesh_cases(folder: Path, up: str, style: str) -> list[tuple[str, Loader]]:
    """Every mesh file under ``folder``, normalised to the canonical frame, with sketches of ``style``.

    A shape's id is its path inside the folder, without the suffix."""
    from model_server.learning.data import sketches

    if style not in sketches.STYLES:
        raise ValueError(f"--style must be one of {', '.join(sketches.STYLES)}, not {style!r}")
    def loader(path: Path) -> Loader:
        def load(rng: np.random.Generator) -> Case:
            vertices, faces = meshes.load_mesh(path, up)
            sketch = sketches.sketch_mesh(vertices, faces, rng, styles=(style,))[0]
            inks = {view: sketch[list(INPUT_VIEWS).index(view)] for view in SKETCH_VIEWS}
            return Case(inks, vertices, faces, str(path), "mesh")
        return load

    return [(path.relative_to(folder).with_suffix("").as_posix(), loader(path)) for path in meshes.find_meshes(folder)]


# --- One shape ------------------------------------------------------------------------------

def evaluate_case(shape_id: str, load: Loader, backend: str, detail: str, device: str,
                  rng: np.random.Generator, refine: int = 0, weights: Path | None = None,
                  roundness: float = DEFAULT_ROUNDNESS) -> dict:
    """Load, reconstruct and score one shape with one backend: a report row (see
    :func:`evaluate_backends`)."""
    return evaluate_backends(shape_id, load, (backend,), detail, device, rng, refine, weights, roundness)[backend]


def evaluate_backends(shape_id: str, load: Loader, backends: tuple[str, ...], detail: str, device: str,
                      rng: np.random.Generator, refine: int = 0, weights: Path | None = None,
                      roundness: float = DEFAULT_ROUNDNESS) -> dict[str, dict]:
    """Load one shape once, then reconstruct and score it with each of ``backends`` in that
    order: backend -> report row. Every backend gets the same sketches and the same
    sampling seed, so they are measured against the same ground-truth samples. Any failure
    becomes a row with ``ok: false`` and the error, except errors that every shape would
    hit, which propagate.

    With ``refine`` a row scores the fitted mesh, and ``before_refine`` the fused one."""
    base: dict = {"id": shape_id, "ok": False}
    try:
        case = load(rng)
    except Exception as exc:  # noqa: BLE001 - one broken shape must not end the evaluation
        base["error"] = _error_text(exc)
        return {backend: dict(base) for backend in backends}
    base.update(source=case.source, family=case.family)
    seed = int(rng.integers(2**32))
    return {backend: _rebuild(dict(base), case, backend, detail, device, np.random.default_rng(seed), refine, weights,
                              roundness)
            for backend in backends}


def _rebuild(row: dict, case: Case, backend: str, detail: str, device: str, rng: np.random.Generator, refine: int,
             weights: Path | None, roundness: float) -> dict:
    """Reconstruct ``case`` with ``backend`` and score it into ``row``."""
    try:
        started = time.perf_counter()
        result = pipeline.reconstruct_images(case.inks, backend=backend, detail=detail, device=device,
                                             weights=weights, roundness=roundness)
        if refine:
            row["before_refine"] = score(result.vertices, result.faces, case, np.random.default_rng(rng.integers(2**32)))
            result = pipeline.refine_result(result, refine, device=device)
            row["fit"] = result.fit
        elapsed = time.perf_counter() - started
        row.update(score(result.vertices, result.faces, case, rng), time_s=elapsed, built_by=result.backend,
                   vertices=int(len(result.vertices)), faces=int(len(result.faces)),
                   timings_s=result.timings, ok=True)
    except Exception as exc:  # noqa: BLE001 - one broken shape must not end the evaluation
        row.update(ok=False, error=_error_text(exc))
    return row


def _error_text(exc: Exception) -> str:
    """A failed shape's error as the report records it; raises again the refusals that
    every shape would meet (they end the run)."""
    if isinstance(exc, Refused):
        if exc.code in RUN_ERRORS:
            raise exc
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def score(vertices: np.ndarray, faces: np.ndarray, case: Case, rng: np.random.Generator) -> dict:
    """All metrics of a reconstruction against its case's ground truth and input sketches."""
    truth = (case.vertices, case.faces)
    pred_pts, pred_normals = metrics.sample_surface(vertices, faces, metrics.SURFACE_SAMPLES, rng)
    true_pts, true_normals = metrics.sample_surface(*truth, metrics.SURFACE_SAMPLES, rng)
    row = {
        "chamfer": metrics.chamfer(pred_pts, true_pts),
        "volume_iou": metrics.volumetric_iou((vertices, faces), truth, metrics.VOLUME_RESOLUTION),
        "normal_consistency": metrics.normal_consistency(pred_pts, pred_normals, true_pts, true_normals),
        "f_score_1": metrics.f_score(pred_pts, true_pts, metrics.F_SCORE_THRESHOLDS["1%"]),
        "f_score_2": metrics.f_score(pred_pts, true_pts, metrics.F_SCORE_THRESHOLDS["2%"]),
    }
    for view in SKETCH_VIEWS:
        row[f"silhouette_iou_{view}"] = metrics.sketch_silhouette_iou(vertices, faces, case.inks[view],
                                                                      INPUT_VIEWS[view])
    row["truth_closed"] = closed_and_oriented(case.faces)
    return row


# --- Report ---------------------------------------------------------------------------------

def summary(rows: list[dict], refined: bool = False) -> dict:
    """One backend's part of the report: its rows, how many failed, and its means (over the
    shapes it reconstructed); with ``refined``, also the means before Fit to strokes."""
    out = {"failed": sum(not row["ok"] for row in rows), "means": means(rows), "shapes": rows}
    if refined:
        out["means_before_refine"] = means(_before_refine(rows))
    return out


def means(rows: list[dict]) -> dict[str, float | None]:
    """Mean of every metric over the shapes that succeeded (None when none did)."""
    ok = [row for row in rows if row["ok"]]
    return {key: (float(np.mean([row[key] for row in ok])) if ok and key in ok[0] else None) for key, _, _ in COLUMNS}


def compared(values: dict[str, float | None], baseline: dict[str, float | None]) -> dict[str, str | None]:
    """Each measure against the baseline's: a ratio for RATIO_COLUMNS, a signed difference
    for the rest, as table text (None where either is missing)."""
    out: dict[str, str | None] = {}
    for key, _, fmt in COLUMNS:
        a, b = values.get(key), baseline.get(key)
        if a is None or b is None or (key in RATIO_COLUMNS and b == 0.0):
            out[key] = None
        else:
            out[key] = f"{a / b:.2f}x" if key in RATIO_COLUMNS else fmt.replace("{:", "{:+").format(a - b)
    return out


def format_table(report: dict) -> str:
    """The report as a fixed-width text table: per shape one line per backend, then each
    backend's means over the shapes that every backend reconstructed and, beside the hull,
    each other backend against it. Shapes whose ground truth is not closed are starred:
    their volumetric IoU is approximate."""
    runs = report["backends"]
    names = list(runs)
    shapes = runs[names[0]]["shapes"]
    common = [i for i in range(len(shapes)) if all(runs[b]["shapes"][i]["ok"] for b in names)]
    table_means = {b: means([runs[b]["shapes"][i] for i in common]) for b in names}
    open_truth = {row["id"] for b in names for row in runs[b]["shapes"] if row["ok"] and not row["truth_closed"]}
    id_width = 1 + max(len("before refine"), len(f"vs {BASELINE}"), *(len(row["id"]) for row in shapes))
    name_width = max(len("backend"), *(len(b) for b in names))
    widths = [max(len(heading), 7) for _, heading, _ in COLUMNS]

    def line(label: str, backend: str, values: dict) -> str:
        cells = [("-" if values.get(key) is None else fmt.format(values[key])).rjust(width)
                 for (key, _, fmt), width in zip(COLUMNS, widths)]
        return "  ".join([label.ljust(id_width), backend.ljust(name_width)] + cells)

    header = "  ".join(["shape".ljust(id_width), "backend".ljust(name_width)]
                       + [h.rjust(w) for (_, h, _), w in zip(COLUMNS, widths)])
    lines = [header, "-" * len(header)]
    for i, shape in enumerate(shapes):
        label = shape["id"] + ("*" if shape["id"] in open_truth else "")
        for k, b in enumerate(names):
            row = runs[b]["shapes"][i]
            name = label if k == 0 else ""
            lines.append(line(name, b, row) if row["ok"]
                         else f"{name.ljust(id_width)}  {b.ljust(name_width)}  FAILED: {row['error']}")
    lines.append("-" * len(header))
    for k, b in enumerate(names):
        lines.append(line("mean" if k == 0 else "", b, table_means[b]))
    if BASELINE in names and len(names) > 1:
        others = [b for b in names if b != BASELINE]
        for k, b in enumerate(others):
            text = compared(table_means[b], table_means[BASELINE])
            cells = [("-" if text[key] is None else text[key]).rjust(width) for (key, _, _), width in zip(COLUMNS, widths)]
            lines.append("  ".join([(f"vs {BASELINE}" if k == 0 else "").ljust(id_width), b.ljust(name_width)] + cells))
    if report["config"].get("refine"):
        for k, b in enumerate(names):
            lines.append(line("before refine" if k == 0 else "", b,
                              means(_before_refine([runs[b]["shapes"][i] for i in common]))))
    config = report["config"]
    for b in names:
        setting = f", roundness {config['roundness']:g}" if b == "round" else ""
        lines.append(f"{report['count'] - runs[b]['failed']} of {report['count']} shapes reconstructed "
                     f"({b} backend{setting}, {config['detail']} detail).")
    if len(names) == 1:
        lines.append("Means over the shapes that succeeded.")
    else:
        lines.append(f"Means over the {len(common)} shapes that every backend reconstructed"
                     + (f"; vs {BASELINE}: Chamfer and time as a ratio to the {BASELINE}'s, the rest as a "
                        f"difference." if BASELINE in names else "."))
    if open_truth:
        lines.append("* ground truth not closed: volumetric IoU approximate (occupancy needs a watertight mesh).")
    return "\n".join(lines)


def _before_refine(rows: list[dict]) -> list[dict]:
    """The scores before Fit to strokes of the rows that succeeded, as rows."""
    return [row["before_refine"] | {"ok": True} for row in rows if row["ok"]]


def _config(args: argparse.Namespace, device: str) -> dict:
    return {
        "data": str(args.data) if args.data else None,
        "meshes": str(args.meshes) if args.meshes else None,
        "split": args.split if args.data else None,
        "style": args.style,
        "up": args.up if args.meshes else None,
        "backends": list(args.backend), "roundness": args.roundness,
        "weights": str(args.weights) if args.weights else None, "detail": args.detail, "refine": args.refine,
        "device": device, "limit": args.limit, "seed": args.seed, "sketch_views": list(SKETCH_VIEWS),
        "surface_samples": metrics.SURFACE_SAMPLES,
        "f_score_thresholds": metrics.F_SCORE_THRESHOLDS,
        "volume_resolution": metrics.VOLUME_RESOLUTION,
        "volume_grid": "union of the two meshes' bounding boxes",
        "frame": "canonical: centred, largest extent 1.7, canvases span [-1, 1] (frame size 2)",
    }
