"""Command line of the model server: serve the add-on, reconstruct PNG sketches, make data, train, evaluate.

See docs/INTERFACE.md for ``serve`` and ``reconstruct``; bad input exits non-zero with one line on stderr.
With ``service/`` (the socket server) this is the service edge: the one place besides the socket that knows
the wire protocol's names and turns the core's refusals into messages.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server.device import DEVICES, resolve_device, use_cpu_threads
from model_server.errors import Refused
from model_server.reconstruct.backends import DEFAULT_BACKEND, DEFAULT_ROUNDNESS
from model_server.service.limits import Limits

WEIGHTS_HELP = ("checkpoint (from `train`) or exported weights (from `export-weights`) for the learned backend "
                "(default: the weights shipped with the server)")

# Commands whose arguments and code live in their own modules, imported only when used,
# so that `serve` starts without importing the training stack.
PLUGGED = {
    "dataset": ("model_server.learning.data.generate", "add_arguments", "run", "generate a training dataset (procedural shapes and/or your meshes)"),
    "dataset-preview": ("model_server.learning.data.previews", "add_preview_arguments", "run_preview", "draw a contact sheet of a dataset"),
    "train": ("model_server.learning.train", "add_arguments", "run", "train the learned backend's network (torchrun for several processes)"),
    "evaluate": ("model_server.evaluation.evaluate", "add_arguments", "run", "reconstruct a dataset or mesh folder and score it"),
    "export-weights": ("model_server.learning.checkpoint", "add_export_arguments", "run_export",
                       "write the compact fp16 inference weights of a training checkpoint"),
    "attribution": ("model_server.learning.data.sweethome", "add_attribution_arguments", "run_attribution",
                    "write the credits of the real objects a training run learned from"),
}

def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The CLI; a plugged command's module is imported only when that command is given."""
    parser = argparse.ArgumentParser(prog="python -m model_server", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the Blender add-on over a loopback socket")
    serve.add_argument("--host", default=protocol.DEFAULT_HOST, help="loopback address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=protocol.DEFAULT_PORT, help="port; 0 picks a free one (default %(default)s)")
    serve.add_argument("--device", choices=DEVICES, default="auto")
    serve.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    serve.add_argument("--token-file", type=Path, help="where to write the access token (default: per-user runtime folder)")
    serve.add_argument("--log-file", type=Path, help="write the log here, rotated at 1 MiB (default: stderr)")
    serve.add_argument("--parent-pid", type=int, help="stop when this process (the Blender that started the server) exits")
    caps = serve.add_argument_group("caps", "what one request, or all clients together, may take (README, Security)")
    caps.add_argument("--max-frame-mb", type=int, default=protocol.DEFAULT_MAX_FRAME // 2**20,
                      help="largest request accepted, in MiB (default %(default)s)")
    caps.add_argument("--max-strokes", type=int, default=Limits.max_strokes,
                      help="most strokes in one sketch (default %(default)s)")
    caps.add_argument("--max-fit-faces", type=int, default=Limits.max_fit_faces,
                      help="most triangles in one Fit to strokes (default %(default)s)")
    caps.add_argument("--max-connections", type=int, default=Limits.max_connections,
                      help="most authenticated connections at once (default %(default)s)")
    caps.add_argument("--max-queued-jobs", type=int, default=Limits.max_queued_jobs,
                      help="most jobs waiting behind the running one; more are answered busy (default %(default)s)")

    rec = sub.add_parser("reconstruct", help="reconstruct a mesh from PNG sketches",
                         description="Reconstruct a mesh from PNG sketches. Give --front, --side or both: one of "
                                     "them alone gives a shape inflated from its outline (a second view gives a "
                                     "truer shape).")
    rec.add_argument("--front", type=Path, help="front view PNG (looks along +Y)")
    rec.add_argument("--side", type=Path, help="side view PNG (looks along -X)")
    rec.add_argument("--top", type=Path, help="optional top view PNG (looks along -Z)")
    rec.add_argument("--backend", choices=protocol.BACKENDS, default=DEFAULT_BACKEND,
                     help="learned: the trained network; round: the hull rounded, no learning; hull: the visual "
                          "hull, no learning (default %(default)s)")
    rec.add_argument("--roundness", type=float, default=DEFAULT_ROUNDNESS, metavar="R",
                     help="the round backend's cross-sections, from the hull's rectangles (0) to ellipses (1) "
                          "(default %(default)s)")
    rec.add_argument("--detail", choices=protocol.DETAILS, default="medium")
    rec.add_argument("--weights", type=Path, help=WEIGHTS_HELP)
    rec.add_argument("--refine", type=int, default=0, metavar="ITERATIONS", help="Fit to strokes iterations (0 skips)")
    rec.add_argument("--device", choices=DEVICES, default="auto")
    rec.add_argument("--out", type=Path, required=True, help="output mesh: .ply, .obj or .glb")
    rec.add_argument("--report", type=Path, help="write a JSON report of sizes and timings")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, add, _, text) in PLUGGED.items():
        plugged = sub.add_parser(name, help=text, description=text)
        if name == chosen:
            getattr(importlib.import_module(module), add)(plugged)
    return parser

def run_serve(args: argparse.Namespace) -> None:
    from model_server.reconstruct.backends.learned import weights_file
    from model_server.service.server import serve

    if args.weights is not None:
        weights_file(args.weights)
    max_frame = args.max_frame_mb * 2**20
    limits = Limits(max_frame=max_frame, max_strokes=args.max_strokes, max_fit_faces=args.max_fit_faces,
                    max_connections=args.max_connections, max_queued_jobs=args.max_queued_jobs,
                    max_bytes_in_flight=max(Limits.max_bytes_in_flight, max_frame))
    serve(args.host, args.port, resolve_device(args.device), args.token_file, limits, weights=args.weights,
          log_file=args.log_file, parent_pid=args.parent_pid)

def run_reconstruct(args: argparse.Namespace) -> None:
    from model_server.geometry import mesh_io
    from model_server.reconstruct import pipeline
    from model_server.sketch.png import load_png_sketch

    started = time.perf_counter()
    if args.out.suffix.lower() not in mesh_io.MESH_SUFFIXES:
        raise ValueError(f"--out must end in {', '.join(mesh_io.MESH_SUFFIXES)}, not {args.out.name!r}")
    if args.front is None and args.side is None:
        raise ValueError("give --front, --side or both: at least one of the front and side sketches is needed")
    if args.weights is not None and args.backend != "learned":
        raise ValueError(f"--weights is for the learned backend, not {args.backend}; add --backend learned")
    views = {name: path for name, path in (("front", args.front), ("side", args.side), ("top", args.top)) if path}
    inks = {name: load_png_sketch(path) for name, path in views.items()}
    # Only Fit to strokes and the network run on torch: the hull path stays on the CPU
    # without importing torch (1.3 s) just to ask whether a GPU is there.
    runs_torch = args.refine > 0 or args.backend == "learned"
    device = resolve_device(args.device) if runs_torch or args.device != "auto" else "cpu"
    if runs_torch:
        use_cpu_threads(device)     # once, before the job (never per fit)
    result = pipeline.reconstruct_images(inks, backend=args.backend, detail=args.detail, device=device, refine=args.refine,
                                         weights=args.weights, roundness=args.roundness,
                                         progress=lambda message, fraction: print(f"[{fraction:4.0%}] {message}", file=sys.stderr))
    mesh_io.write_mesh(args.out, result.vertices, result.faces)
    timings = dict(result.timings, total=time.perf_counter() - started)
    report = result.summary() | {"timings_s": timings}
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.out} ({report['vertices']} vertices, {report['faces']} faces) in {timings['total']:.2f} s")
    for note in result.notes:
        print(f"Note: {note}")
    if result.fit:
        print(f"Fit to strokes: {protocol.describe_fit(result.fit)}")

def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if args.command in PLUGGED:
        module, _, run, _ = PLUGGED[args.command]
        command = getattr(importlib.import_module(module), run)
    else:
        command = run_serve if args.command == "serve" else run_reconstruct
    try:
        command(args)
    except (Refused, ProtocolError, ValueError, OSError) as exc:
        print(f"error: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 2
    return 0

if __name__ == "__main__":
    sys.exit(main())
