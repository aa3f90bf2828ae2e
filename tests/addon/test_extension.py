"""The extension package: built and validated with Blender's own tool, installed into a fresh profile."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory) -> Path:
    """The zip, built the way `make extension` does: manifest + package sources, then Blender's tool."""
    root = tmp_path_factory.mktemp("extension")
    source, dist = root / "extension", root / "dist"
    source.mkdir()
    dist.mkdir()  # Blender's tool does not create it
    shutil.copy(MANIFEST, source)
    for path in (REPO / "sketch2mesh_addon").glob("*.py"):
        shutil.copy(path, source)
    built = _tool("build", "--source-dir", str(source), "--output-dir", str(dist))
    assert built.returncode == 0, built.stdout + built.stderr
    version = tomllib.loads(MANIFEST.read_text())["version"]
    zip_path = dist / f"sketch2mesh-{version}.zip"
    assert zip_path.is_file(), built.stdout
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
    assert {"blender_manifest.toml", "__init__.py", "protocol.py", "operators.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


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
