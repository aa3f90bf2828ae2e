"""Set up server: failures say what to do and leave nothing that looks ready; a cancel leaves nothing.

These make real virtual environments with the running Python and run real pip; the
one complete install (a few minutes) is in test_extension.py, through the installed zip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import bpy
import pytest

from sketch2mesh_addon import client, pip_install, preferences, server_setup

ADDON = "sketch2mesh_addon"

REPO = Path(__file__).resolve().parents[2]
SOURCE = server_setup.find_source(REPO / "sketch2mesh_addon")


@pytest.fixture
def setup_prefs(addon):
    """The add-on's preferences, put back as they were after the test."""
    prefs = bpy.context.preferences.addons[ADDON].preferences
    names = ("server_python", "wheelhouse", "setup_python", "setup_flavour", "torch_index")
    saved = {name: getattr(prefs, name) for name in names}
    yield prefs
    for name, value in saved.items():
        setattr(prefs, name, value)
    server_setup.last_failure = None


def _make_env(env_dir: Path) -> Path:
    """A real environment with pip, marked ready as a finished set-up would leave it."""
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=300)
    python = server_setup.env_python(env_dir)
    (env_dir / server_setup.READY_FILE).write_text(json.dumps({"python": str(python), "flavour": "cpu", "gpu": ""}))
    assert server_setup.read_ready(env_dir) is not None
    return python


def test_setup_from_an_empty_wheelhouse_fails_in_one_sentence_and_leaves_nothing(setup_prefs, tmp_path):
    wheelhouse, env_dir = tmp_path / "wheels", tmp_path / "env"
    wheelhouse.mkdir()
    setup_prefs.wheelhouse, setup_prefs.server_python = str(wheelhouse), "/elsewhere/bin/python"
    with pytest.raises(RuntimeError) as failed:
        bpy.ops.sketch2mesh.setup_server(directory=str(env_dir))
    sentence, *pip_lines = str(failed.value).removeprefix("Error: ").strip().splitlines()
    assert sentence.startswith(f"The wheelhouse folder {wheelhouse} lacks wheels the server needs")
    assert sentence.endswith("or clear Wheelhouse to download them.")
    assert any("No matching distribution found for torch" in line for line in pip_lines)
    assert len(pip_lines) <= server_setup.TAIL_LINES
    assert not env_dir.exists()                                    # the half-made environment is gone
    assert setup_prefs.server_python == "/elsewhere/bin/python"    # the artist's own setting is untouched
    assert server_setup.last_failure is not None and server_setup.last_failure.message == sentence


def test_a_failed_repair_leaves_the_old_environment_without_its_ready_mark(tmp_path):
    env_dir, wheelhouse = tmp_path / "env", tmp_path / "wheels"
    wheelhouse.mkdir()
    _make_env(env_dir)
    plan = server_setup.Plan(env_dir=env_dir, source=SOURCE, wheelhouse=str(wheelhouse))
    with pytest.raises(server_setup.SetupError):
        server_setup.setup(plan, lambda message, fraction: None, threading.Event())
    assert env_dir.is_dir()                          # a repair keeps what was there for the next click
    assert server_setup.read_ready(env_dir) is None  # but it no longer claims to be ready


def test_a_cancelled_setup_leaves_nothing_behind(tmp_path):
    env_dir = tmp_path / "env"
    cancel, seen = threading.Event(), []

    def progress(message: str, fraction: float) -> None:
        seen.append(message)
        if message.startswith("Installing the server's packages"):
            cancel.set()                              # Esc while pip runs

    plan = server_setup.Plan(env_dir=env_dir, source=SOURCE, torch_index=pip_install.NO_INDEX)
    with pytest.raises(client.Cancelled):
        server_setup.setup(plan, progress, cancel)
    assert "Creating the environment" in seen
    assert not env_dir.exists()
    assert server_setup.last_failure is None


def test_a_python_without_venv_is_refused_with_what_to_do(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'ensurepip'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    plan = server_setup.Plan(env_dir=tmp_path / "env", source=SOURCE, base_python=str(fake))
    with pytest.raises(server_setup.SetupError) as failed:
        server_setup.setup(plan, lambda message, fraction: None, threading.Event())
    assert "cannot make a virtual environment (it lacks venv or ensurepip)" in failed.value.message
    assert "No module named 'ensurepip'" in failed.value.details
    missing = server_setup.Plan(env_dir=tmp_path / "env", source=SOURCE, base_python=str(tmp_path / "nope"))
    with pytest.raises(server_setup.SetupError, match="does not exist"):
        server_setup.setup(missing, lambda message, fraction: None, threading.Event())
    assert not (tmp_path / "env").exists()


@pytest.mark.parametrize("output, wheelhouse, says", [
    ("OSError: [Errno 28] No space left on device", "", "The disk is full"),
    ("WARNING: Retrying ... NewConnectionError ... ERROR: No matching distribution found for torch", "",
     "Could not download the server's packages: check the internet connection"),
    ("ERROR: No matching distribution found for open3d==0.20.0", "/w", "The wheelhouse folder /w lacks wheels"),
    ("error: subprocess-exited-with-error", "", "Installing the server's packages failed (pip exit code 1)"),
])
def test_pip_failures_become_one_sentence_that_says_what_to_do(output, wheelhouse, says, tmp_path):
    plan = server_setup.Plan(env_dir=tmp_path, source=SOURCE, wheelhouse=wheelhouse)
    failure = server_setup.pip_failure(1, ["Collecting torch", *output.split(" ... ")], plan)
    assert failure.message.startswith(says) and failure.message.count(". ") == 0
    assert failure.details.splitlines()[-1] == output.split(" ... ")[-1]


def test_pip_output_becomes_the_current_package_and_a_fraction():
    seen: list[tuple[str, float]] = []
    progress = pip_install.PipProgress(lambda message, fraction: seen.append((message, fraction)), 0.1, 0.9, "cpu")
    for line in ("Processing /wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (from -r r.txt (line 5))",
                 "Collecting typing-extensions>=4.10 (from torch==2.13.0)",
                 "Downloading open3d-0.20.0-cp311-cp311-manylinux_2_31_x86_64.whl (400.8 MB)",
                 "Requirement already satisfied: numpy==2.4.6 in ./lib (from -r r.txt (line 6)) (2.4.6)",
                 "Installing collected packages: a, b, c"):
        progress(line)
    assert [message for message, _ in seen] == [
        "Getting torch (CPU)", "Getting typing-extensions (CPU)", "Downloading open3d (400.8 MB) (CPU)",
        "Getting numpy (CPU)", "Installing 3 packages (a minute or two)"]
    fractions = [fraction for _, fraction in seen]
    assert fractions == sorted(fractions) and 0.1 < fractions[0] and fractions[-1] < 0.9


def test_server_python_falls_back_to_the_environment_set_up_made(setup_prefs, tmp_path, monkeypatch):
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setattr(preferences, "env_dir", lambda: env_dir)
    monkeypatch.delenv(preferences.SERVER_PYTHON_ENV, raising=False)
    setup_prefs.server_python = ""
    assert preferences.settings().server_python == ""
    (env_dir / server_setup.READY_FILE).write_text(json.dumps({"python": sys.executable, "flavour": "cpu"}))
    assert preferences.settings().server_python == sys.executable
    setup_prefs.server_python = "/own/bin/python"          # an engineer's own environment wins
    assert preferences.settings().server_python == "/own/bin/python"


def test_headless_setup_failure_prints_the_sentence_then_pips_last_lines(tmp_path):
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "SKETCH2MESH_SERVER_PYTHON"}
    done = subprocess.run([sys.executable, str(REPO / "sketch2mesh_addon" / "headless.py"), "--", "--setup-server",
                           str(tmp_path / "env"), "--wheelhouse", str(wheelhouse)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("error: The wheelhouse folder") and all(line.startswith("  ") for line in lines[1:])
    assert any("No matching distribution found" in line for line in lines[1:])
    assert not (tmp_path / "env").exists()


def test_esc_while_setting_up_cancels_cleanly_through_the_job_flow(tmp_path):
    """The interactive path, as the modal operator drives it: progress, Esc, then one line."""
    from sketch2mesh_addon import job_flow, jobs, server_operators

    env_dir = tmp_path / "env"
    plan = server_setup.Plan(env_dir=env_dir, source=SOURCE, torch_index=pip_install.NO_INDEX)
    job = jobs.submit(server_operators.SETUP_TITLE, jobs.setup_work(plan))
    flow = job_flow.JobFlow(job, time.monotonic)
    deadline = time.monotonic() + 120
    while not job.message.startswith(("Installing", "Getting", "Downloading")) and not job.done.is_set():
        assert time.monotonic() < deadline, job.message
        time.sleep(0.05)
    step = flow.handle(job_flow.Event.TICK)
    assert step.returns == job_flow.RUNNING and step.status.startswith("Set up server: ")
    assert flow.handle(job_flow.Event.ESC).status.startswith("Set up server: cancelling")
    assert job.done.wait(60)
    end = flow.handle(job_flow.Event.TICK)
    assert end.returns == job_flow.CANCELLED and end.report == job_flow.Report("INFO", "Set up server cancelled.")
    assert not env_dir.exists()


def test_the_stamp_follows_what_the_server_carries(tmp_path):
    import shutil

    copy = tmp_path / "carried"
    shutil.copytree(SOURCE.model_server, copy / "model_server", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "requirements").mkdir()
    shutil.copy2(SOURCE.requirements, copy / "requirements")
    shutil.copy2(SOURCE.addon / "__init__.py", copy / "__init__.py")
    shutil.copytree(SOURCE.addon / "protocol", copy / "protocol", ignore=shutil.ignore_patterns("__pycache__"))
    carried = server_setup.find_source(copy)
    assert carried.model_server == copy / "model_server"           # the installed layout is found too
    assert server_setup.source_stamp(carried) == server_setup.source_stamp(SOURCE)
    (copy / "model_server" / "service" / "server.py").write_text("# changed\n", encoding="utf-8")
    changed = server_setup.find_source(copy)
    assert changed == carried          # the same Source, so clear the cache as a new Blender session would
    server_setup.source_stamp.cache_clear()
    assert server_setup.source_stamp(changed) != server_setup.source_stamp(SOURCE)
