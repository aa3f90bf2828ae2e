"""Benchmark Fit to strokes: time per iteration against face count, and fitting quality.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_fitting.py [--device cpu|cuda] [--skip-quality] [--split-count 80]

Speed: spheres of about 5k, 20k and 80k faces fitted to an ellipsoid's front and side
silhouettes at 256^2 (the issue's case), plus the hull pipeline's own ~24k-face mesh of the
spot example (shrunk by 7%, as it already matches its sketch), whose extruded walls make
it the hardest realistic input. Each row times a 20- and a 60-iteration fit after a
warm-up: their difference gives the time per iteration, the rest is set-up; "200 it"
is set-up + 200 iterations (a fit usually stops earlier). The same run also times the
renderer alone (forward + backward, one view) as the baseline the per-iteration cost is
built from.

Quality: ``reconstruct --refine 200`` on clean line drawings of (a) the test split of a
freshly generated procedural dataset (issue 3's split rule) and (b) ../shared/eval-meshes.
For each: mean and minimum silhouette IoU against the sketch before and after fitting,
and the 3D Chamfer distance to the ground truth before and after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.device import use_cpu_threads  # noqa: E402
from model_server.evaluation import evaluate  # noqa: E402
from model_server.fit import optimiser as fitting  # noqa: E402
from model_server.fit.diffrender import mesh_edges, render_silhouette  # noqa: E402
from model_server.geometry import views  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402
from model_server.sketch.png import load_png_sketch  # noqa: E402

EVAL_MESHES = ROOT.parent / "shared" / "eval-meshes"
SPEED_ITERATIONS = 20
SPHERE_RESOLUTIONS = {"5k": 35, "20k": 71, "80k": 141}   # open3d sphere resolution r -> ~4 r^2 faces


def ellipsoid_targets(res: int = views.RESOLUTION) -> dict[str, fitting.FitTarget]:
    """Front and side silhouettes of the ellipsoid with semi-axes (0.7, 0.45, 0.55)."""
    targets = {}
    for name, (a, b) in {"front": (0.7, 0.55), "side": (0.45, 0.55)}.items():
        view = views.INPUT_VIEWS[name]
        u, v = views.plane_grid(view, res)
        mask = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        targets[name] = fitting.FitTarget(mask, fitting.outline_points(mask, [], view))
    return targets


def sphere(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh.create_sphere(0.5, resolution)
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.triangles, np.int64)


SHRINK = 0.93   # the spot hull is shrunk by this about its centre, so its outlines are a few pixels off


def hull_mesh(name: str = "spot") -> tuple[np.ndarray, np.ndarray, dict[str, fitting.FitTarget]]:
    inks = {view: load_png_sketch(ROOT / "examples" / name / f"{view}.png") for view in ("front", "side")}
    result = pipeline.reconstruct_images(inks, backend="hull")
    targets = {view: fitting.FitTarget(mask, fitting.outline_points(mask, [], views.INPUT_VIEWS[view]))
               for view, mask in result.silhouettes.items()}
    centre = result.vertices.mean(axis=0)
    shrunk = centre + SHRINK * (result.vertices - centre)   # the hull already matches: give the fit work
    return shrunk.astype(np.float32), result.faces, targets


def time_fit(vertices, faces, targets, device: str) -> dict:
    """Per-iteration time from two fits of different lengths (their difference cancels the
    fixed set-up: factorisation, k-d trees, the IoU reports), and the set-up itself."""
    fitting.fit_to_strokes(vertices, faces, targets, iterations=2, device=device)   # warm-up
    runs = []
    for count in (SPEED_ITERATIONS, 3 * SPEED_ITERATIONS):
        _sync(device)
        started = time.perf_counter()
        result = fitting.fit_to_strokes(vertices, faces, targets, iterations=count, device=device)
        _sync(device)
        runs.append((result.iterations, time.perf_counter() - started))
    (short, t_short), (long, t_long) = sorted(runs)
    per_iteration = (t_long - t_short) / max(1, long - short)
    fixed = max(0.0, t_short - short * per_iteration)
    return {"ms_per_iteration": 1e3 * per_iteration, "fixed_s": fixed, "projected_200_s": fixed + 200 * per_iteration}


def time_renderer(vertices, faces, device: str, repeats: int = 10) -> float:
    """Milliseconds for one front-view render, forward and backward."""
    x = torch.as_tensor(vertices, device=device).requires_grad_(True)
    f = torch.as_tensor(faces, device=device)
    edges = mesh_edges(f)
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        started = time.perf_counter()
        render_silhouette(x, f, views.FRONT, edges=edges).sum().backward()
        _sync(device)
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times[1:])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def speed_table(device: str) -> None:
    rows = [(label, *sphere(resolution), ellipsoid_targets()) for label, resolution in SPHERE_RESOLUTIONS.items()]
    rows.append(("spot hull", *hull_mesh("spot")))
    print(f"\nSpeed ({device}, 2 views at {views.RESOLUTION}^2, {torch.get_num_threads()} torch threads)")
    print(f"{'mesh':<10} {'faces':>7} {'render f+b ms':>14} {'ms / iteration':>15} {'set-up s':>9} {'200 it, s':>10}")
    for label, vertices, faces, targets in rows:
        render_ms = time_renderer(vertices, faces, device)
        timing = time_fit(vertices, faces, targets, device)
        print(f"{label:<10} {len(faces):>7} {render_ms:>14.1f} {timing['ms_per_iteration']:>15.1f} "
              f"{timing['fixed_s']:>9.2f} {timing['projected_200_s']:>10.2f}")


def quality_rows(cases, device: str, iterations: int) -> list[dict]:
    rows = []
    for index, (shape_id, load) in enumerate(cases):
        row = evaluate.evaluate_case(shape_id, load, "hull", "medium", device, np.random.default_rng([0, index]),
                                     refine=iterations)
        status = "ok" if row["ok"] else f"FAILED {row.get('error')}"
        print(f"  {shape_id}: {status}", file=sys.stderr, flush=True)
        rows.append(row)
    return [row for row in rows if row["ok"]]


def quality_table(name: str, rows: list[dict]) -> None:
    if not rows:
        print(f"\n{name}: no shapes")
        return
    print(f"\nQuality: {name} ({len(rows)} shapes, clean line drawings, --refine 200)")
    print(f"{'metric':<26} {'before':>9} {'after':>9}")
    for view in evaluate.SKETCH_VIEWS:
        key = f"silhouette_iou_{view}"
        before = [row["before_refine"][key] for row in rows]
        after = [row[key] for row in rows]
        print(f"{'sIoU ' + view + ' mean':<26} {np.mean(before):>9.4f} {np.mean(after):>9.4f}")
        print(f"{'sIoU ' + view + ' min':<26} {np.min(before):>9.4f} {np.min(after):>9.4f}")
    before = np.array([row["before_refine"]["chamfer"] for row in rows])
    after = np.array([row["chamfer"] for row in rows])
    print(f"{'Chamfer mean':<26} {before.mean():>9.5f} {after.mean():>9.5f}")
    print(f"{'Chamfer better / worse':<26} {int((after < before).sum()):>9d} {int((after > before).sum()):>9d}")
    fits = [row["fit"] for row in rows]
    print(f"{'flipped faces (total)':<26} {'':>9} {sum(f['flipped_faces'] for f in fits):>9d}")
    print(f"{'iterations (mean)':<26} {'':>9} {np.mean([f['iterations'] for f in fits]):>9.1f}")
    print(f"{'fit seconds (mean)':<26} {'':>9} {np.mean([f['seconds'] for f in fits]):>9.2f}")
    for row in rows:
        print(f"  {row['id']:<22} sIoU f {row['before_refine']['silhouette_iou_front']:.3f}->"
              f"{row['silhouette_iou_front']:.3f}  s {row['before_refine']['silhouette_iou_side']:.3f}->"
              f"{row['silhouette_iou_side']:.3f}  Chamfer {row['before_refine']['chamfer']:.4f}->{row['chamfer']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--split-count", type=int, default=80, help="shapes in the generated dataset (default %(default)s)")
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    use_cpu_threads(args.device)     # as the server and the command line do, once per process
    if not args.skip_speed:
        speed_table(args.device)
    if args.skip_quality:
        return
    from model_server.learning.data import generate as dataset

    with tempfile.TemporaryDirectory() as folder:
        plan = dataset.make_plan(args.split_count, None, None, "z", 0, views.RESOLUTION)
        dataset.generate(folder, plan, progress=False)
        cases = evaluate.dataset_cases(Path(folder), "test", "clean")
        quality_table("issue 3 test split", quality_rows(cases, args.device, args.iterations))
    if EVAL_MESHES.is_dir():
        cases = evaluate.mesh_cases(EVAL_MESHES, "y", "clean")
        quality_table("shared/eval-meshes", quality_rows(cases, args.device, args.iterations))


if __name__ == "__main__":
    main()
