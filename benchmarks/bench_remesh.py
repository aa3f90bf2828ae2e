"""What Remesh: Quads costs the artist: Reconstruct with and without it, on every bundled example.

Run in a bpy environment, with the server environment's Python in SKETCH2MESH_SERVER_PYTHON::

    SKETCH2MESH_SERVER_PYTHON=.venv/bin/python .venv-bpy50/bin/python benchmarks/bench_remesh.py [--repeats 3]

Through the real operator and a real server, each example is reconstructed (round backend,
medium detail) with remesh NONE (the baseline) and QUADS, alternating in the same run so
both see the same machine load. The table gives the medians, QuadriFlow's share (the time
Blender's UI waits), the quads against the target, and whether every result was a closed
all-quad mesh.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402  (first: it puts Blender's script modules, addon_utils among them, on the path)
import addon_utils  # noqa: E402
import numpy as np  # noqa: E402

from sketch2mesh_addon import preferences, remesh, server_process, strokes  # noqa: E402

EXAMPLES = REPO / "examples"


def reconstruct(sketch: dict, remesh: str, target: int) -> tuple[float, bpy.types.Object]:
    """One Reconstruct of ``sketch`` through the operator; (seconds, the new object)."""
    gp = strokes.new_sketch(bpy.context.scene.collection, "Bench")
    strokes.write_sketch(gp, {view: [np.asarray(line, np.float32) for line in lines] for view, lines in sketch.items()})
    bpy.context.view_layer.objects.active = gp
    started = time.perf_counter()
    bpy.ops.sketch2mesh.reconstruct(backend="ROUND", detail="MEDIUM", remesh=remesh, target_faces=target)
    return time.perf_counter() - started, bpy.context.view_layer.objects.active


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", type=int, default=5000)
    args = parser.parse_args()
    addon_utils.enable("sketch2mesh_addon", default_set=True)
    server_process.ensure_server(preferences.settings())
    print(f"Remesh: Quads at target {args.target}, round backend, medium detail, median of {args.repeats} "
          f"(bpy {bpy.app.version_string})\n")
    print("| example | triangles | reconstruct | + quads | QuadriFlow | quads (vs target) | closed all-quad |")
    print("|---|---|---|---|---|---|---|")
    for example in sorted(p for p in EXAMPLES.iterdir() if (p / "strokes.json").is_file()):
        sketch = json.loads((example / "strokes.json").read_text())
        plain, quads, triangles, counts, good = [], [], [], [], 0
        for _ in range(args.repeats):
            bpy.ops.wm.read_homefile(use_empty=True)
            seconds, obj = reconstruct(sketch, "NONE", args.target)
            plain.append(seconds)
            triangles.append(len(obj.data.polygons))
            bpy.ops.wm.read_homefile(use_empty=True)
            seconds, obj = reconstruct(sketch, "QUADS", args.target)
            quads.append(seconds)
            counts.append(len(obj.data.polygons))
            good += remesh.quad_mesh_problem(obj.data) is None
        base, with_quads = statistics.median(plain), statistics.median(quads)
        count = statistics.median(counts)
        print(f"| {example.name} | {statistics.median(triangles):.0f} | {base:.2f} s | {with_quads:.2f} s | "
              f"{with_quads - base:.2f} s | {count:.0f} ({count / args.target - 1:+.0%}) | "
              f"{good}/{args.repeats} |")
    server_process.stop()


if __name__ == "__main__":
    main()
