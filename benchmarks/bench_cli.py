"""Benchmark the command line as a pipeline engineer runs it: whole processes, timed from outside.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_cli.py [--runs 5] [--baseline REV] [--example spot]

Each run is ``/usr/bin/time python -m model_server reconstruct --front F --side S
--backend hull --out M.ply --report R.json`` on a bundled example. The table splits the
wall time into start-up (interpreter, imports, reading the PNGs: wall minus the pipeline's
own total), the pipeline's stages from the report, and peak memory. ``--baseline REV``
measures another revision (a temporary git worktree) in the same session, alternating
runs, so both sides see the same machine load.
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
STAGES = ("rasterize", "predict", "fuse", "poisson")


def run_once(tree: Path, example: str, out: Path) -> dict[str, float]:
    """One whole CLI process in ``tree``; its wall time, peak memory and report timings."""
    mesh, report, timing = out / "mesh.ply", out / "report.json", out / "time.txt"
    folder = ROOT / "examples" / example
    command = ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), sys.executable, "-m", "model_server", "reconstruct",
               "--front", str(folder / "front.png"), "--side", str(folder / "side.png"), "--backend", "hull",
               "--out", str(mesh), "--report", str(report)]
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True)
    wall, peak_kb = timing.read_text().split()[-2:]
    timings = json.loads(report.read_text())["timings_s"]
    row = {"wall": float(wall), "startup": float(wall) - timings["total"], "peak_mb": int(peak_kb) / 1024}
    row.update({stage: timings.get(stage, 0.0) for stage in STAGES})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--example", default="spot")
    parser.add_argument("--baseline", help="git revision to measure in the same run (e.g. HEAD~3)")
    args = parser.parse_args()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.baseline:
            subprocess.run(["git", "worktree", "add", "--detach", "-f", str(scratch / "baseline"), args.baseline],
                           cwd=ROOT, check=True, capture_output=True)
            trees = {f"baseline {args.baseline}": scratch / "baseline", **trees}
        try:
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for _ in range(args.runs):
                for name, tree in trees.items():
                    out = scratch / name.replace(" ", "_")
                    out.mkdir(exist_ok=True)
                    rows[name].append(run_once(tree, args.example, out))
        finally:
            if args.baseline:
                subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "baseline")], cwd=ROOT,
                               capture_output=True)
    columns = ("wall", "startup", *STAGES, "peak_mb")
    print(f"reconstruct --backend hull on examples/{args.example} PNGs, median of {args.runs} whole processes, seconds")
    print(f"{'tree':<24}" + "".join(f"{c:>10}" for c in columns))
    for name, runs in rows.items():
        medians = [statistics.median(r[c] for r in runs) for c in columns]
        print(f"{name:<24}" + "".join(f"{m:>10.2f}" if c != "peak_mb" else f"{m:>10.0f}" for c, m in zip(columns, medians)))


if __name__ == "__main__":
    main()
