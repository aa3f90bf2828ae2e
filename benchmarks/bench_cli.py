"""Benchmark the command line as a pipeline engineer runs it: whole processes, timed from outside.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_cli.py [--runs 5] [--baseline REV] [--example spot] [--backends hull,round,learned]

Each run is ``/usr/bin/time python -m model_server reconstruct --front F --side S
--backend B --out M.ply --report R.json`` on a bundled example, for each backend B of
``--backends``: one row per backend (and tree), so the backends read side by side. The
table splits the wall time into start-up (interpreter, imports, reading the PNGs: wall
minus the pipeline's own total), the pipeline's stages from the report, and peak memory.
``--baseline REV`` measures another revision (a temporary git worktree) in the same
session, alternating runs, so both sides see the same machine load. A dash marks what a
tree does not have: a backend its CLI refuses as an invalid choice (a revision from
before it), or a stage its report does not time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import parse_backends  # noqa: E402

STAGES = ("rasterize", "predict", "fuse", "poisson", "snap", "trust", "refine")


def run_once(tree: Path, example: str, backend: str, out: Path) -> dict[str, float] | None:
    """One whole CLI process in ``tree`` with ``backend``; its wall time, peak memory and the
    stages its report times. None when the tree's CLI refuses ``backend`` as an invalid choice."""
    mesh, report, timing = out / "mesh.ply", out / "report.json", out / "time.txt"
    folder = ROOT / "examples" / example
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable, "-m", "model_server", "reconstruct",
               "--front", str(folder / "front.png"), "--side", str(folder / "side.png"), "--backend", backend,
               "--out", str(mesh), "--report", str(report)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True)
    if done.returncode == 2 and b"argument --backend: invalid choice" in done.stderr:
        return None
    done.check_returncode()
    wall, peak_kb = timing.read_text().split()[-2:]
    timings = json.loads(report.read_text())["timings_s"]
    row = {"wall": float(wall), "startup": float(wall) - timings["total"], "peak_mb": int(peak_kb) / 1024}
    row.update({stage: timings[stage] for stage in STAGES if stage in timings})
    return row


def median_cell(runs: list[dict[str, float]], column: str) -> str:
    """The runs' median of ``column`` as a table cell; a dash when a run lacks it (or there are none)."""
    if not runs or any(column not in run for run in runs):
        return f"{'-':>10}"
    median = statistics.median(run[column] for run in runs)
    return f"{median:>10.0f}" if column == "peak_mb" else f"{median:>10.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--example", default="spot")
    parser.add_argument("--baseline", help="git revision to measure in the same run (e.g. HEAD~3)")
    parser.add_argument("--backends", type=parse_backends, default="hull,round,learned",
                        help="comma-separated, compared side by side (default %(default)s)")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.baseline:
            subprocess.run(["git", "worktree", "add", "--detach", "-f", str(scratch / "baseline"), args.baseline],
                           cwd=ROOT, check=True, capture_output=True)
            trees = {f"baseline {args.baseline}": scratch / "baseline", **trees}
        try:
            rows: dict[tuple[str, str], list[dict[str, float]]] = {
                (backend, name): [] for backend in args.backends for name in trees}
            refused: set[tuple[str, str]] = set()
            for _ in range(args.runs):
                for backend, name in rows:
                    if (backend, name) in refused:
                        continue
                    out = scratch / name.replace(" ", "_")
                    out.mkdir(exist_ok=True)
                    row = run_once(trees[name], args.example, backend, out)
                    if row is None:
                        refused.add((backend, name))
                        print(f"{name}: no --backend {backend}; skipped", file=sys.stderr)
                    else:
                        rows[backend, name].append(row)
        finally:
            if args.baseline:
                subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "baseline")], cwd=ROOT,
                               capture_output=True)
    columns = ("wall", "startup", *STAGES, "peak_mb")
    print(f"reconstruct --backend {' | '.join(args.backends)} on examples/{args.example} PNGs, "
          f"median of {args.runs} whole processes, seconds; -: not in that tree")
    print(f"{'backend':<9}{'tree':<24}" + "".join(f"{c:>10}" for c in columns))
    for (backend, name), runs in rows.items():
        print(f"{backend:<9}{name:<24}" + "".join(median_cell(runs, c) for c in columns))


if __name__ == "__main__":
    main()
