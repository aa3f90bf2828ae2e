"""Set up the model server's Python environment from what the add-on carries.

An installed extension holds ``model_server/`` and ``requirements/runtime.txt`` beside
the add-on's modules; a source checkout holds them beside ``sketch2mesh_addon/``.
:func:`setup` turns them into a working server environment, step by step:

1. check the base Python (Blender's own, or one the artist names) can make one;
2. create a virtual environment (or reuse the one there, to repair or update it);
3. pip-install the pinned requirements: CPU or CUDA torch, from the package
   registries or, offline, from a wheelhouse folder (:mod:`.pip_install` words the
   command, its progress and its failure);
4. copy the server's code and the wire protocol (the ``protocol`` package) into it;
5. start the server from it and wait for its answer;
6. only then write the marker that says it is ready.

A failure raises :class:`SetupError` (one sentence, and pip's last lines); a cancel
raises :class:`client.Cancelled`. Either way an environment this call created is
removed, and one it repaired is left without its marker, so nothing half-made ever
looks ready. No bpy here: the same code runs in a worker thread and from the
headless script.
"""

from __future__ import annotations

import functools
import hashlib
import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import client, pip_install, server_process
from .pip_install import Progress, isolated_env

ENV_FOLDER = "server-env"
READY_FILE = "sketch2mesh-ready.json"
REQUIREMENTS = Path("requirements") / "runtime.txt"
DOWNLOAD_SIZE = "about 1 GB"
FLAVOURS = ("cpu", "cuda")
PYTHON_VERSIONS = ((3, 10), (3, 12))     # what the pinned wheels (open3d 0.20) exist for
TAIL_LINES = 8
SERVER_READY_S = 300.0

last_failure: SetupError | None = None   # the newest set-up's failure, for the preferences to show

PROBE = ("import json, sys, torch; cuda = torch.cuda.is_available(); "
         "print(json.dumps({'cuda': cuda, 'gpu': torch.cuda.get_device_name(0) if cuda else '', "
         "'python': sys.executable}))")


class SetupError(Exception):
    """The set-up failed: ``message`` says what to do, ``details`` holds pip's last lines."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.message = message
        self.details = details

    def report(self) -> str:
        """The sentence, then the details below it."""
        return self.message + (f"\n{self.details}" if self.details else "")


@dataclass(frozen=True)
class Source:
    """What the set-up installs: the server's code, its pinned requirements and the wire protocol."""

    model_server: Path
    requirements: Path
    addon: Path           # the add-on package: its __init__.py and protocol/ serve the server too


@dataclass(frozen=True)
class Plan:
    """One set-up: where, from which Python, which torch, from where."""

    env_dir: Path
    source: Source
    base_python: str = ""         # "" means the Python running this code (Blender's)
    flavour: str = "cpu"
    wheelhouse: str = ""          # a folder of wheels: install from it alone, offline
    torch_index: str = ""         # "" means the flavour's default index; pip_install.NO_INDEX, pip's configuration


@dataclass(frozen=True)
class Ready:
    """What the marker of a ready environment records."""

    python: str
    flavour: str
    gpu: str = ""
    stamp: str = ""       # source_stamp() of the server it was set up from

    def label(self) -> str:
        """"ready: CPU" or "ready: CUDA (GPU name)"."""
        return f"ready: CUDA ({self.gpu})" if self.flavour == "cuda" else "ready: CPU"


def find_source(addon_dir: Path) -> Source:
    """The server the add-on carries: beside its modules (an installed extension) or beside
    its package folder (a source checkout)."""
    for root in (addon_dir, addon_dir.parent):
        if (root / "model_server" / "__main__.py").is_file() and (root / REQUIREMENTS).is_file():
            return Source(root / "model_server", root / REQUIREMENTS, addon_dir)
    raise SetupError(f"This copy of Sketch2Mesh does not carry the server ({addon_dir} has no model_server "
                     "folder); install the extension zip from the release, or set Server Python to an "
                     "environment of your own.")


@functools.cache
def source_stamp(source: Source) -> str:
    """A digest of the server the add-on carries (code, weights, pinned list, protocol), so an
    environment set up from an older extension can be told apart. Cached: it changes only
    when the extension is replaced, which reloads the add-on."""
    digest = hashlib.sha256()
    files = sorted(p for p in source.model_server.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in [*files, source.requirements, *protocol_files(source.addon)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def protocol_files(addon_dir: Path) -> list[Path]:
    """The wire protocol's modules (the ``protocol`` package), which serve the server too."""
    return sorted((addon_dir / "protocol").glob("*.py"))


def env_python(env_dir: Path) -> Path:
    """The interpreter inside a virtual environment."""
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def read_ready(env_dir: Path) -> Ready | None:
    """The ready environment at ``env_dir``, or None if it is absent, half-made or broken."""
    try:
        ready = Ready(**json.loads((env_dir / READY_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return ready if Path(ready.python).is_file() else None


def nvidia_gpu() -> str:
    """The first NVIDIA GPU's name, or "" when there is none (or no driver to ask)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ""
    try:
        out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []
    return names[0] if names else ""


@functools.cache
def nvidia_gpu_cached() -> str:
    """:func:`nvidia_gpu`, asked once per Blender session (the preferences draw it often)."""
    return nvidia_gpu()


def _tail(lines: list[str]) -> str:
    """The last non-empty output lines, the part that says what went wrong."""
    return "\n".join([line.rstrip() for line in lines if line.strip()][-TAIL_LINES:])


def run_logged(command: list[str], cancel: threading.Event, on_line: Callable[[str], None] | None = None,
               env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``command``, feeding each output line to ``on_line``; kill it on cancel.

    Returns the exit code and every line; raises :class:`client.Cancelled`."""
    try:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
                                   creationflags=server_process.NO_WINDOW)
    except OSError as exc:
        return 127, [f"{command[0]}: {exc.strerror or exc}"]
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True, name="sketch2mesh: set-up output").start()
    seen: list[str] = []
    while True:
        if cancel.is_set():
            process.kill()
            process.wait()
            raise client.Cancelled("cancelled", "Set up server cancelled.")
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line.rstrip("\n"))
        if on_line is not None:
            on_line(line.strip())
    return process.wait(), seen


def pip_failure(code: int, lines: list[str], plan: Plan) -> SetupError:
    """A failed pip run as a SetupError: :func:`pip_install.failure_message`, then pip's last lines."""
    return SetupError(pip_install.failure_message(code, lines, plan), _tail(lines))


def check_base_python(plan: Plan, cancel: threading.Event) -> str:
    """The interpreter to build the environment with; raises SetupError if it cannot."""
    base = plan.base_python or sys.executable
    named = bool(plan.base_python)
    who = f"The Python {base}" if named else "Blender's Python"
    if not Path(base).is_file():
        raise SetupError(f"Setup Python points to {base}, which does not exist; name a Python 3.11 "
                         "interpreter, or clear it to use Blender's own.")
    check = ("import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])")
    code, lines = run_logged([base, "-c", check], cancel)
    if code != 0:
        fix = "install its venv module" if named else "set Setup Python to a Python 3.11 interpreter"
        raise SetupError(f"{who} cannot make a virtual environment (it lacks venv or ensurepip): {fix}, "
                         "then click Set up again.", _tail(lines))
    version = tuple(int(part) for part in lines[-1].strip().split("."))
    low, high = PYTHON_VERSIONS
    if not low <= version <= high:
        raise SetupError(f"{who} is Python {lines[-1].strip()}, and the server's packages need Python "
                         f"{low[0]}.{low[1]} to {high[0]}.{high[1]}: set Setup Python to a Python 3.11 interpreter.")
    return base


def install_code(source: Source, python: Path, cancel: threading.Event) -> None:
    """Copy the server's code and the wire protocol into the environment's site-packages."""
    code, lines = run_logged([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cancel)
    if code != 0:
        raise SetupError("The new environment's Python does not run; click Set up again to rebuild it.", _tail(lines))
    site = Path(lines[-1].strip())
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.rmtree(site / "model_server", ignore_errors=True)
    shutil.copytree(source.model_server, site / "model_server", ignore=ignore)
    addon_dir = site / "sketch2mesh_addon"
    shutil.rmtree(addon_dir, ignore_errors=True)
    addon_dir.mkdir()
    shutil.copy2(source.addon / "__init__.py", addon_dir / "__init__.py")
    shutil.copytree(source.addon / "protocol", addon_dir / "protocol", ignore=ignore)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_server(plan: Plan, python: Path, cancel: threading.Event) -> Ready:
    """Ask torch what it sees, then start the server from the environment and wait for its answer."""
    code, lines = run_logged([str(python), "-c", PROBE], cancel, env=isolated_env())
    if code != 0:
        raise SetupError("The server's packages are installed but do not import; click Set up again to repair "
                         "them.", _tail(lines))
    probe = json.loads(lines[-1])
    if plan.flavour == "cuda" and not probe["cuda"]:
        raise SetupError("The CUDA packages are installed but torch sees no GPU: update the NVIDIA driver, or "
                         "choose CPU and click Set up again.", _tail(lines))
    with tempfile.TemporaryDirectory(prefix="sketch2mesh-setup-") as state:
        settings = server_process.Settings(server_python=str(python), port=_free_port(), device=plan.flavour,
                                           state_dir=Path(state))
        server = server_process.ManagedServer(settings)
        try:
            server.start()
            server.wait_ready(SERVER_READY_S, cancel)
        except server_process.ServerStartError as exc:
            raise SetupError("The environment is installed but its server does not start; click Set up again "
                             "to repair it.", server.log_tail() or str(exc)) from None
        finally:
            server.stop()
    return Ready(python=str(python), flavour=plan.flavour, gpu=probe["gpu"], stamp=source_stamp(plan.source))


def setup(plan: Plan, progress: Progress, cancel: threading.Event) -> Ready:
    """Make (or repair) the server environment of ``plan``; see the module's docstring."""
    global last_failure
    env_dir = plan.env_dir
    created = not env_dir.exists()
    last_failure = None
    try:
        progress("Checking Python", 0.0)
        base = check_base_python(plan, cancel)
        (env_dir / READY_FILE).unlink(missing_ok=True)
        python = env_python(env_dir)
        if not python.is_file():
            progress("Creating the environment", 0.02)
            code, lines = run_logged([base, "-m", "venv", str(env_dir)], cancel)
            if code != 0 or not python.is_file():
                raise SetupError(f"Could not create the environment in {env_dir}: check that the folder is "
                                 "writable and the disk has room, then click Set up again.", _tail(lines))
        command, env = pip_install.pip_command(plan, python)
        progress(f"Installing the server's packages ({plan.flavour.upper()})", 0.05)
        code, lines = run_logged(command, cancel, pip_install.PipProgress(progress, 0.05, 0.85, plan.flavour), env)
        if code != 0:
            raise pip_failure(code, lines, plan)
        progress("Copying the server", 0.86)
        install_code(plan.source, python, cancel)
        progress("Starting the server to check it", 0.9)
        ready = check_server(plan, python, cancel)
        marker = env_dir / (READY_FILE + ".tmp")
        marker.write_text(json.dumps(asdict(ready), indent=1))
        marker.replace(env_dir / READY_FILE)
        progress(ready.label(), 1.0)
        return ready
    except BaseException as exc:
        if isinstance(exc, SetupError):
            last_failure = exc
        if created:
            shutil.rmtree(env_dir, ignore_errors=True)
        raise
