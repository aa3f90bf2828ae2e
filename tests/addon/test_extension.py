"""The extension package: built and validated with Blender's own tool, installed into a fresh profile."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import bpy
import pytest

import sketch2mesh_addon

REPO = Path(sketch2mesh_addon.__file__).resolve().parents[1]
MANIFEST = REPO / "blender_manifest.toml"
EXT_TOOL = Path(bpy.utils.system_resource("SCRIPTS")) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXT_TOOL), *args], capture_output=True, text=True, timeout=300)


def _builder():
    """tools/build_extension.py, the one recipe `make extension` runs too."""
    spec = importlib.util.spec_from_file_location("build_extension", REPO / "tools" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    """The zip, built as `make extension` builds it (Blender's tool builds and validates it)."""
    zip_path = _builder().build(tmp_path_factory.mktemp("dist"), REPO)
    version = tomllib.loads(MANIFEST.read_text())["version"]
    assert zip_path.name == f"sketch2mesh-{version}.zip" and zip_path.is_file()
    return zip_path


def test_manifest_declares_what_the_contract_needs():
    manifest = tomllib.loads(MANIFEST.read_text())
    assert manifest["id"] == "sketch2mesh" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0"
    assert set(manifest["permissions"]) >= {"network", "files"}
    assert all(license.startswith("SPDX:") for license in manifest["license"])


def test_extension_builds_and_validates(extension_zip):
    validated = _tool("validate", str(extension_zip))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    names = set(zipfile.ZipFile(extension_zip).namelist())
    assert {"blender_manifest.toml", "__init__.py", "operators.py", "server_setup.py", "props.py"} <= names
    protocol = Path(sketch2mesh_addon.__file__).parent / "protocol"
    assert {f"protocol/{module.name}" for module in protocol.glob("*.py")} <= names
    assert "protocol/__init__.py" in names and "protocol.py" not in names
    # The server the add-on sets up rides along: its code, the shipped weights, the pinned list.
    assert {"model_server/__main__.py", "model_server/service/server.py", "model_server/weights/learned.pt",
            "requirements/runtime.txt"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/", "examples/", "docs/")) for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    pins = zipfile.ZipFile(extension_zip).read("requirements/runtime.txt").decode()
    requirements = [line for line in pins.splitlines() if line.strip() and not line.startswith("#")]
    assert requirements and all("==" in line for line in requirements), "every requirement is pinned"
    assert extension_zip.stat().st_size < 30e6


INSTALL_SCRIPT = textwrap.dedent("""
    import sys
    import bpy
    zip_path = sys.argv[-1]
    assert bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
    name = "bl_ext.user_default.sketch2mesh"
    assert name in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
    prefs = bpy.context.preferences.addons[name].preferences
    assert (prefs.host, prefs.port, prefs.auto_start, prefs.device) == ("127.0.0.1", 47631, True, "AUTO")
    package = sys.modules[name]
    assert package.protocol.DEFAULT_PORT == 47631
    assert bpy.ops.sketch2mesh.new_sketch() == {"FINISHED"}
    assert bpy.context.view_layer.objects.active.name == "Sketch"
    print("USER_DIR", package.preferences.user_dir())
    print("PACKAGE_DIR", package.__path__[0])
""")


@pytest.mark.slow
def test_extension_installs_into_a_fresh_profile_and_enables(extension_zip, tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(profile))
    env.pop("PYTHONPATH", None)  # the installed extension must not lean on the source checkout
    done = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(extension_zip)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("USER_DIR", "PACKAGE_DIR")))
    assert Path(lines["PACKAGE_DIR"]).is_relative_to(profile)
    assert Path(lines["USER_DIR"]).is_relative_to(profile) and not Path(lines["USER_DIR"]).is_relative_to(
        Path(lines["PACKAGE_DIR"]))


def _installed(extension_zip: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Install the zip into a fresh Blender profile; return the installed package folder and an
    environment that knows nothing of this repository (no PYTHONPATH, no Server Python)."""
    profile = tmp_path / "profile"
    profile.mkdir()
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(profile))
    for name in ("PYTHONPATH", "SKETCH2MESH_SERVER_PYTHON"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", INSTALL_SCRIPT, str(extension_zip)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    package = next(line.split(" ", 1)[1] for line in done.stdout.splitlines() if line.startswith("PACKAGE_DIR"))
    return Path(package), env


@pytest.mark.slow
def test_installed_zip_sets_up_its_server_and_reconstructs_with_nothing_from_the_repository(extension_zip, tmp_path):
    """The artist's route: install the zip, Set up server (a real install from the package
    registry), reconstruct a bundled example through the installed extension alone."""
    package, env = _installed(extension_zip, tmp_path)
    env_dir = tmp_path / "server env"
    # pip's own configuration picks torch's build on this machine: no extra index to reach.
    setup = subprocess.run([sys.executable, str(package / "headless.py"), "--", "--setup-server", str(env_dir),
                            "--torch-index", "none"], capture_output=True, text=True, env=env, timeout=1800,
                           cwd=tmp_path)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    assert "Installing" in setup.stdout and "ready: CPU" in setup.stdout     # progress went to the console
    server_python = next(line.split(": ", 1)[1] for line in setup.stdout.splitlines()
                         if line.startswith("Server Python: "))
    assert Path(server_python).is_relative_to(env_dir)
    ready = json.loads((env_dir / "sketch2mesh-ready.json").read_text())
    assert ready["python"] == server_python and len(ready["stamp"]) == 16
    where = subprocess.run([server_python, "-c", "import model_server, sketch2mesh_addon.protocol as p; "
                            "print(model_server.__file__); print(p.__file__)"], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60)
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(env_dir) for line in where.stdout.splitlines()), where.stdout

    out = tmp_path / "spot.ply"
    done = subprocess.run([sys.executable, str(package / "headless.py"), "--", "--strokes",
                           str(REPO / "examples" / "spot" / "strokes.json"), "--server-python", server_python,
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert out.is_file() and out.stat().st_size > 10_000
    assert str(REPO) not in done.stdout + done.stderr
