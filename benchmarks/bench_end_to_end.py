"""End-to-end timing as the artist meets it: Blender sketch → socket → server → mesh in Blender.

Run in a bpy environment, with the server environment's Python in SKETCH2MESH_SERVER_PYTHON::

    SKETCH2MESH_SERVER_PYTHON=.venv/bin/python .venv-bpy50/bin/python benchmarks/bench_end_to_end.py

It starts a real server process, draws each example's strokes into a Grease Pencil
object placed off the origin at another scale, and prints per-stage medians:
the server's own stages, the transfer (round trip minus server time, framing and
socket both ways included) and the import into Blender. Each example is reconstructed
by each backend of ``--backends`` (default hull,round,learned), one row per backend, so
the backends read side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import bpy  # noqa: E402
import numpy as np  # noqa: E402

from sketch2mesh_addon import client, mesh_import, protocol, server_process, strokes  # noqa: E402

STAGES = ("rasterize", "predict", "fuse", "poisson", "snap", "trust", "refine", "total")


def parse_backends(text: str) -> tuple[str, ...]:
    """``--backends``: the add-on's backend names, comma-separated, each once (the server's own
    parser, in ``model_server.evaluation``, needs packages this bpy environment lacks)."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names or any(name not in protocol.BACKENDS for name in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"give one or more of {', '.join(protocol.BACKENDS)}, comma-separated, "
                                         f"each once; not {text!r}")
    return names


def world_sketch(example: Path, scale: float, offset: np.ndarray) -> dict[str, list[np.ndarray]]:
    """An example's strokes moved into world units: scaled and shifted like a real scene."""
    axes = {"front": (0, 2), "side": (1, 2), "top": (0, 1)}
    data = json.loads((example / "strokes.json").read_text())
    return {view: [np.asarray(s, np.float32) * scale + offset[list(axes[view])] for s in lines]
            for view, lines in data.items()}


def run_once(conn: server_process.Connection, sketch: dict, backend: str, detail: str) -> dict[str, float]:
    """One reconstruct by ``backend`` through the add-on's client: the server's stages, transfer and import."""
    gp = strokes.new_sketch(bpy.context.scene.collection, "Bench")
    strokes.write_sketch(gp, sketch)
    read = strokes.read_sketch(gp)
    started = time.perf_counter()
    result = client.reconstruct(conn.host, conn.port, conn.token, read, backend=backend, detail=detail)
    round_trip = time.perf_counter() - started
    started = time.perf_counter()
    obj = mesh_import.add_result(bpy.context, gp, result.vertices, result.faces, result.info)
    imported = time.perf_counter() - started
    timings = dict(result.info["timings_s"])
    row = {k: timings.get(k, 0.0) for k in STAGES}
    row |= {"transfer": round_trip - timings["total"], "import": imported, "round trip": round_trip + imported,
            "faces": float(len(result.faces))}
    for o in (obj, gp):
        bpy.data.objects.remove(o)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--detail", default="medium", choices=protocol.DETAILS)
    parser.add_argument("--examples", nargs="*", default=None)
    parser.add_argument("--backends", type=parse_backends, default="hull,round,learned",
                        help="comma-separated, compared side by side (default %(default)s)")
    args = parser.parse_args()
    python = str(Path(os.environ.get("SKETCH2MESH_SERVER_PYTHON", REPO / ".venv" / "bin" / "python")).absolute())
    examples = [REPO / "examples" / e for e in args.examples] if args.examples else \
        sorted(p for p in (REPO / "examples").iterdir() if (p / "strokes.json").exists())
    with tempfile.TemporaryDirectory() as state:
        settings = server_process.Settings(server_python=python, port=47699, device="cpu", state_dir=Path(state))
        conn = server_process.start(settings)
        try:
            columns = (*STAGES, "transfer", "import", "round trip")
            print(f"bpy {bpy.app.version_string}, {' | '.join(args.backends)}, detail {args.detail}, "
                  f"median of {args.repeat} runs (seconds)\n")
            print(f"| {'example':<15}| {'backend':<8}| " + " | ".join(f"{c:>10}" for c in columns) + " |    faces |")
            print("|" + "-" * 16 + "|" + "-" * 9 + "|" + "|".join("-" * 12 for _ in columns) + "|----------|")
            for example in examples:
                sketch = world_sketch(example, 2.5, np.array([3.0, -1.0, 2.0], np.float32))
                for backend in args.backends:
                    rows = [run_once(conn, sketch, backend, args.detail) for _ in range(args.repeat)]
                    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
                    print(f"| {example.name:<15}| {backend:<8}| " + " | ".join(f"{med[c]:>10.3f}" for c in columns)
                          + f" | {int(med['faces']):>8} |", flush=True)
        finally:
            server_process.stop()


if __name__ == "__main__":
    main()
