"""pip, as Set up server runs it: which index torch comes from, the command line and its
environment (online, or offline from a wheelhouse), pip's output turned into progress,
and a failed install worded as one sentence the artist can act on.

No bpy here; :mod:`.server_setup` runs the command and owns the steps around it.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .server_setup import Plan

TORCH_INDEXES = {                        # extra indexes for torch's builds; None: PyPI's own build
    ("cpu", "linux"): "https://download.pytorch.org/whl/cpu",
    ("cpu", "win32"): None,
    ("cuda", "linux"): None,
    ("cuda", "win32"): "https://download.pytorch.org/whl/cu128",
}
NO_INDEX = "none"                        # torch_index value: pip's own configuration only
EXPECTED_PACKAGES = 70                   # about what a fresh install collects, for the progress fraction

Progress = Callable[[str, float], None]


def torch_index(plan: Plan) -> str | None:
    """The extra index torch's wheels come from, or None for pip's configuration alone."""
    if plan.wheelhouse or plan.torch_index == NO_INDEX:
        return None
    if plan.torch_index:
        return plan.torch_index
    platform = "win32" if sys.platform == "win32" else "linux" if sys.platform.startswith("linux") else "other"
    return TORCH_INDEXES.get((plan.flavour, platform))


def isolated_env() -> dict[str, str]:
    """This process's environment, without what would let another Python's packages leak in."""
    env = dict(os.environ, PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def pip_command(plan: Plan, python: Path) -> tuple[list[str], dict[str, str]]:
    """pip's command line and environment for the plan's requirements."""
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
               "-r", str(plan.source.requirements)]
    env = isolated_env()
    if plan.wheelhouse:
        # Offline: this folder alone, whatever pip's own configuration says.
        command += ["--no-index", "--find-links", plan.wheelhouse]
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
    index = torch_index(plan)
    if index:
        command += ["--extra-index-url", index]
    return command, env


class PipProgress:
    """Turns pip's output lines into a message and a fraction of the install step."""

    def __init__(self, progress: Progress, start: float, end: float, flavour: str):
        self.progress, self.start, self.end = progress, start, end
        self.flavour = flavour.upper()
        self.collected = 0

    def __call__(self, line: str) -> None:
        match = PIP_LINE.match(line)
        span = self.end - self.start
        if match is not None:
            what, name = match.groups()
            package = package_name(name)
            if what != "Downloading":
                self.collected += 1
            fraction = self.start + 0.8 * span * min(1.0, self.collected / EXPECTED_PACKAGES)
            size = line[line.rfind("("):].strip() if what == "Downloading" and line.endswith(")") else ""
            verb = "Downloading" if what == "Downloading" else "Getting"
            self.progress(f"{verb} {package} {size}".strip() + f" ({self.flavour})", fraction)
        elif line.startswith("Installing collected packages"):
            count = len(line.split(":", 1)[1].split(","))
            self.progress(f"Installing {count} packages (a minute or two)", self.start + 0.85 * span)


PIP_LINE = re.compile(r"(Collecting|Processing|Downloading|Requirement already satisfied:)\s+(\S+)")


def package_name(name: str) -> str:
    """"torch" from "torch==2.13.0", "/wheels/torch-2.13.0+cpu-....whl" or "typing-extensions>=4"."""
    if name.endswith((".whl", ".tar.gz", ".zip")):
        return Path(name).name.split("-")[0]
    return re.split(r"[=<>!~\[;(]", name)[0]


def failure_message(code: int, lines: list[str], plan: Plan) -> str:
    """One sentence for a failed pip run, from what its output says went wrong."""
    text = "\n".join(lines)
    if "No space left on device" in text:
        message = f"The disk is full: free about 3 GB where {plan.env_dir} lies, then click Set up again."
    elif plan.wheelhouse and ("No matching distribution" in text or "Could not find a version" in text):
        message = (f"The wheelhouse folder {plan.wheelhouse} lacks wheels the server needs (see below): add them "
                   "(pip download -r requirements/runtime.txt), or clear Wheelhouse to download them.")
    elif any(s in text for s in ("NewConnectionError", "Failed to establish a new connection",
                                 "Temporary failure in name resolution", "ConnectTimeout", "Read timed out",
                                 "No matching distribution", "Could not find a version")):
        message = ("Could not download the server's packages: check the internet connection (and proxy), "
                   "or set Wheelhouse to a folder of downloaded wheels, then click Set up again.")
    else:
        message = f"Installing the server's packages failed (pip exit code {code}); see pip's last lines below."
    return message
