"""Reconstruct a sketch from a .blend file without Blender's UI.

With a Blender binary::

    blender -b FILE.blend -P sketch2mesh_addon/headless.py -- [options] --out OUT.blend|.glb|.obj|.ply

With the bpy wheel::

    python sketch2mesh_addon/headless.py --blend FILE.blend -- [options] --out OUT...

Instead of a .blend, ``--strokes STROKES.json`` builds the sketch in an empty file
from polylines per view, ``{"front": [[[u, v], ...], ...], "side": ..., "top": ...}``
in world view-plane coordinates (the bundled examples' strokes.json).

Options: ``--sketch NAME`` (default: the active, else the only, else the "Sketch"
Grease Pencil object; with --strokes, the new sketch's name), ``--backend learned|round|hull``,
``--roundness R`` (the round backend's, in [0, 1]), ``--detail low|medium|high``, ``--refine N``,
``--remesh none|quads`` (quads: remesh the result with Blender's QuadriFlow, keeping the
triangles if it fails), ``--target-faces N`` (about how many quads, default 5000),
``--server-python PATH`` (default: the add-on preference, then the SKETCH2MESH_SERVER_PYTHON
environment variable, then the environment Set up server made), ``--port N``, ``--out`` (repeat it to write several files) and
``--render PREVIEW.png`` (a headless render of the result).

Setting up the server environment, as the preferences' Set up server button does::

    python <installed extension>/headless.py -- --setup-server [DIR] [--cuda] [--wheelhouse DIR]
           [--setup-python PYTHON3.11] [--torch-index URL|none]

creates (or repairs) the environment in DIR (default: the extension's user folder) and
prints its interpreter, the ``--server-python`` of later runs; with ``--out`` too it
then reconstructs with it.

OBJ and PLY files keep Blender's Z-up world coordinates, like the model server's
output; glTF is Y-up by its specification (the add-on's :mod:`export` writes them and
the preview, once the add-on is enabled). The input .blend is never saved: the
sketch in it stays untouched. On error the script prints one line (a failed set-up
adds pip's last lines below it) and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_MODULE = "sketch2mesh_addon"
OUTPUT_SUFFIXES = (".blend", ".glb", ".obj", ".ply")


class HeadlessError(Exception):
    """A problem to report in one line."""


def split_argv(argv: list[str]) -> list[str]:
    """The script's own arguments. Run by Python (``argv[0]`` is this script) that is
    everything but the ``--`` separator; run by Blender, what follows ``--``."""
    if Path(argv[0]).name == Path(__file__).name:
        return [a for a in argv[1:] if a != "--"]
    return argv[argv.index("--") + 1:] if "--" in argv else []


def source_protocol() -> types.ModuleType:
    """The add-on's protocol package, where the backends and details are defined. Run as
    a script, load it from its folder: importing the add-on package here would make
    Blender reload it when it enables the add-on."""
    if __package__:
        return importlib.import_module(__package__ + ".protocol")
    name = "_sketch2mesh_headless_protocol"
    if name not in sys.modules:
        package = Path(__file__).with_name("protocol")
        spec = importlib.util.spec_from_file_location(name, package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="headless.py", description="Reconstruct a Grease Pencil sketch headless.")
    parser.add_argument("--blend", type=Path, help="the .blend to open (bpy wheel; a Blender binary opens it itself)")
    parser.add_argument("--strokes", type=Path, help="instead of a .blend: build the sketch in an empty file from a "
                                                     "JSON file {view: [[[u, v], ...], ...]} (examples/*/strokes.json)")
    parser.add_argument("--sketch", help="name of the Grease Pencil object to reconstruct")
    protocol = source_protocol()
    parser.add_argument("--backend", choices=protocol.BACKENDS, default=protocol.DEFAULT_BACKEND)
    parser.add_argument("--roundness", type=float, default=protocol.DEFAULT_ROUNDNESS, metavar="R",
                        help="the round backend's cross-sections, from the hull's rectangles (0) to ellipses (1)")
    parser.add_argument("--detail", choices=protocol.DETAILS, default="medium")
    parser.add_argument("--refine", type=int, default=0, metavar="N", help="Fit to strokes iterations (0 skips)")
    parser.add_argument("--remesh", choices=("none", "quads"), default="none",
                        help="quads: remesh the result into quads with QuadriFlow (the triangles stay if it fails)")
    parser.add_argument("--target-faces", type=int, default=5000, metavar="N",
                        help="--remesh quads: about how many quads (100 to 200000)")
    parser.add_argument("--server-python", help="Python of the server environment")
    parser.add_argument("--port", type=int, help="server port (default: the add-on preference)")
    parser.add_argument("--out", type=Path, action="append", default=[],
                        help="output file: .blend, .glb, .obj or .ply; repeat for several")
    parser.add_argument("--render", type=Path, help="also render a PNG preview of the result")
    setup = parser.add_argument_group("setting up the server environment")
    setup.add_argument("--setup-server", nargs="?", const="", metavar="DIR",
                       help="create or repair the server environment in DIR (default: the extension's user folder)")
    setup.add_argument("--cuda", action="store_true", help="install torch for NVIDIA GPUs instead of the CPU")
    setup.add_argument("--wheelhouse", help="install from this folder of wheels alone, offline")
    setup.add_argument("--setup-python", help="a Python 3.11 to build the environment with (default: Blender's)")
    setup.add_argument("--torch-index", help="extra package index for torch ('none': pip's own configuration)")
    return parser


def check_roundness(value: float) -> None:
    """Refuse a --roundness the server would refuse, before anything is opened."""
    protocol = source_protocol()
    try:
        protocol.check_float({"roundness": value}, "roundness", *protocol.ROUNDNESS_RANGE, protocol.DEFAULT_ROUNDNESS)
    except protocol.ProtocolError as exc:
        raise HeadlessError(f"--{exc.message}") from None


def installed_module() -> str | None:
    """The module name of the installed extension this script belongs to ("bl_ext.<repo>.sketch2mesh"),
    or None when it runs from a source checkout."""
    import bpy

    here = Path(__file__).resolve().parent
    if not (here / "blender_manifest.toml").is_file():
        return None
    for repo in bpy.context.preferences.extensions.repos:
        if repo.enabled and Path(repo.directory).resolve() == here.parent:
            return f"bl_ext.{repo.module}.{here.name}"
    raise HeadlessError(f"{here} is neither a source checkout nor in one of Blender's extension repositories")


def enable_addon() -> tuple[str, bool]:
    """Make the Sketch2Mesh operators available; return (module name, whether we enabled it).
    An installed extension enables itself; a source checkout, the add-on module beside it."""
    import addon_utils
    import bpy

    for name in bpy.context.preferences.addons.keys():
        if name == SOURCE_MODULE or name.endswith(".sketch2mesh"):
            return name, False
    installed = installed_module()
    if installed is not None:
        errors: list[BaseException] = []
        if addon_utils.enable(installed, default_set=True, handle_error=errors.append) is None:
            raise HeadlessError(f"could not enable the installed extension {installed}: "
                                f"{errors[0] if errors else 'unknown error'}")
        return installed, True
    script_dir = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(script_dir)]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    errors: list[BaseException] = []
    if addon_utils.enable(SOURCE_MODULE, default_set=True, handle_error=errors.append) is None:
        raise HeadlessError(f"could not enable the Sketch2Mesh add-on from {REPO}: {errors[0] if errors else 'unknown error'}")
    return SOURCE_MODULE, True


def read_strokes_json(path: Path) -> dict:
    """Polylines per view from a JSON file, as numpy arrays; raises HeadlessError if malformed."""
    import numpy as np

    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not set(data) <= {"front", "side", "top"}:
            raise ValueError("expected an object with the keys front, side and top")
        return {view: [np.asarray(line, np.float32).reshape(-1, 2) for line in lines] for view, lines in data.items()}
    except FileNotFoundError:
        raise HeadlessError(f"the file {path} does not exist") from None
    except (OSError, ValueError, TypeError) as exc:
        raise HeadlessError(f"{path} is not a valid strokes file: {exc}") from None


def find_sketch(name: str | None, addon_module: str):
    """The sketch object to reconstruct."""
    import bpy

    module = importlib.import_module(addon_module + ".strokes")
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise HeadlessError(f"there is no object named {name!r} in the file")
        if not module.is_sketch(obj):
            raise HeadlessError(f"{name!r} is not a Grease Pencil object of this Blender version")
        return obj
    active = bpy.context.view_layer.objects.active
    if module.is_sketch(active):
        return active
    sketches = [o for o in bpy.context.scene.objects if module.is_sketch(o)]
    if len(sketches) == 1:
        return sketches[0]
    named = bpy.data.objects.get("Sketch")
    if named is not None and module.is_sketch(named):
        return named
    raise HeadlessError("no sketch found: pass --sketch NAME" if sketches else "the file has no Grease Pencil sketch")


def setup_server(args: argparse.Namespace) -> str:
    """Run Set up server with the options given; return the new environment's interpreter."""
    import bpy

    addon_module, we_enabled = enable_addon()
    try:
        prefs = bpy.context.preferences.addons[addon_module].preferences
        prefs.setup_flavour = "CUDA" if args.cuda else "CPU"
        prefs.wheelhouse = str(Path(args.wheelhouse).resolve()) if args.wheelhouse else ""
        prefs.setup_python = args.setup_python or ""
        prefs.torch_index = args.torch_index or ""
        directory = str(Path(args.setup_server).resolve()) if args.setup_server else ""
        try:
            bpy.ops.sketch2mesh.setup_server(directory=directory)
        except RuntimeError as exc:
            raise HeadlessError(str(exc).strip().removeprefix("Error: ")) from None
        return prefs.server_python
    finally:
        if we_enabled:
            import addon_utils

            addon_utils.disable(addon_module, default_set=True)


def run(args: argparse.Namespace) -> None:
    """Open, reconstruct, write. Raises HeadlessError or RuntimeError with a one-line message."""
    import bpy

    if args.setup_server is not None:
        args.server_python = setup_server(args)
        print(f"Server Python: {args.server_python}")
        if not args.out:
            return
    if not args.out:
        raise HeadlessError("give --out OUT.blend|.glb|.obj|.ply (or --setup-server)")
    bad = [p for p in args.out if p.suffix.lower() not in OUTPUT_SUFFIXES]
    if bad:
        raise HeadlessError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}, not {bad[0].name!r}")
    if args.blend is not None and args.strokes is not None:
        raise HeadlessError("give either --blend or --strokes, not both")
    check_roundness(args.roundness)
    if args.blend is not None:
        if not args.blend.is_file():
            raise HeadlessError(f"the file {args.blend} does not exist")
        bpy.ops.wm.open_mainfile(filepath=str(args.blend))
    sketch_lines = read_strokes_json(args.strokes) if args.strokes is not None else None
    if sketch_lines is not None:
        bpy.ops.wm.read_homefile(use_empty=True)
    addon_module, we_enabled = enable_addon()
    try:
        addon = bpy.context.preferences.addons[addon_module]
        if args.server_python:
            addon.preferences.server_python = args.server_python
        if args.port:
            addon.preferences.port = args.port
        if sketch_lines is not None:
            strokes = importlib.import_module(addon_module + ".strokes")
            sketch = strokes.new_sketch(bpy.context.scene.collection, args.sketch or "Sketch")
            strokes.write_sketch(sketch, sketch_lines)
        else:
            sketch = find_sketch(args.sketch, addon_module)
        if bpy.context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        bpy.context.view_layer.objects.active = sketch
        bpy.ops.sketch2mesh.reconstruct(backend=args.backend.upper(), roundness=args.roundness,
                                        detail=args.detail.upper(), refine_iterations=args.refine,
                                        remesh=args.remesh.upper(), target_faces=args.target_faces)
        result = bpy.context.view_layer.objects.active
        mesh_import = importlib.import_module(addon_module + ".mesh_import")
        protocol = importlib.import_module(addon_module + ".protocol")
        export = importlib.import_module(addon_module + ".export")
        if mesh_import.FIT_PROPERTY in result:
            print(f"Fit to strokes: {protocol.describe_fit(result[mesh_import.FIT_PROPERTY].to_dict())}")
        for path in args.out:
            export.export(path)
            print(f"Wrote {path}")
        if args.render:
            export.render_preview(result, args.render)
            print(f"Rendered {args.render}")
    finally:
        if we_enabled:
            import addon_utils

            addon_utils.disable(addon_module, default_set=True)
        else:
            importlib.import_module(addon_module + ".server_process").stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(split_argv(sys.argv if argv is None else argv))
    try:
        run(args)
    except HeadlessError as exc:
        first, *details = str(exc).strip().splitlines() or [type(exc).__name__]
        print(f"error: {first}", file=sys.stderr)
        for line in details:
            print(f"  {line}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        print(f"error: {message.removeprefix('Error: ')}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    exit_code = main()
    if Path(sys.argv[0]).name == Path(__file__).name:
        # Run by Python with the bpy wheel: everything is written and the server stopped,
        # so leave without Python's shutdown, which crashes in the 4.2 wheel after a glTF export.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    sys.exit(exit_code)
