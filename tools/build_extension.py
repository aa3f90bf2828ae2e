"""Build the extension zip an artist installs: the add-on, and the server it sets up.

The zip holds the manifest and the add-on's modules and packages (``protocol/``) at its
root, and beside them ``model_server/`` (with the shipped weights) and
``requirements/runtime.txt`` (the pinned list Set up server installs): the same layout
as the repository, one level up, so
:func:`sketch2mesh_addon.server_setup.find_source` finds the server in both. Tests,
benchmarks, examples and training data stay out. Blender's own extension tool builds
and validates it. Run with a Python that has the ``bpy`` wheel (``make extension``)::

    python tools/build_extension.py [--out dist]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def blender_ext_tool() -> Path:
    """Blender's extension command-line tool, as the bpy wheel ships it."""
    import bpy

    return Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def stage(repo: Path, dest: Path) -> None:
    """Lay out the extension's files in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(repo / "blender_manifest.toml", dest)
    addon = repo / "sketch2mesh_addon"
    for module in sorted(addon.glob("*.py")):
        shutil.copy2(module, dest)
    for package in sorted(p.parent for p in addon.glob("*/__init__.py")):   # protocol/
        shutil.copytree(package, dest / package.name, ignore=SKIP)
    shutil.copytree(repo / "model_server", dest / "model_server", ignore=SKIP)
    (dest / "requirements").mkdir()
    shutil.copy2(repo / "requirements" / "runtime.txt", dest / "requirements")


def _tool(*args: str) -> None:
    done = subprocess.run([sys.executable, str(blender_ext_tool()), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"blender_ext {args[0]} failed:\n{done.stdout}{done.stderr}")


def build(out_dir: Path, repo: Path = REPO) -> Path:
    """Stage, build and validate the zip in ``out_dir``; return its path."""
    version = tomllib.loads((repo / "blender_manifest.toml").read_text())["version"]
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"sketch2mesh-{version}.zip"
    zip_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="sketch2mesh-extension-") as staging:
        source = Path(staging) / "sketch2mesh"
        stage(repo, source)
        _tool("build", "--source-dir", str(source), "--output-dir", str(out_dir))
    _tool("validate", str(zip_path))
    return zip_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="folder for the zip (default: dist/)")
    zip_path = build(parser.parse_args().out.resolve())
    print(f"Extension: {zip_path} ({zip_path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
