"""The token file: where a server keeps its access token, written and read so that only
this user can see it and no one can plant or swap it.
"""

from __future__ import annotations

import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path


class TokenFileError(OSError):
    """A token file that would not be private: its folder is shared, or its path is a link."""


def runtime_dir() -> Path:
    """Per-user folder for the server's token files (``SKETCH2MESH_RUNTIME_DIR`` overrides)."""
    if os.environ.get("SKETCH2MESH_RUNTIME_DIR"):
        return Path(os.environ["SKETCH2MESH_RUNTIME_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "sketch2mesh"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "sketch2mesh"
    return Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache") / "sketch2mesh"


def token_path(port: int, folder: Path | None = None) -> Path:
    """Where the server listening on ``port`` keeps its token (in ``folder``, by default the runtime folder)."""
    return Path(folder or runtime_dir()) / f"server-{port}.token"


def private_dir(folder: Path, tighten: bool = False) -> Path:
    """``folder``, created 0700 if missing; refused (:class:`TokenFileError`) if another
    user owns it or others may write to it, since they could then swap the token.

    With ``tighten`` (for the folders Sketch2Mesh itself owns, which a umask of 002 leaves
    group-writable) a folder of this user's that others may write to is made 0700
    instead, unless it is a shared sticky folder such as /tmp."""
    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if sys.platform == "win32":
        return folder
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise TokenFileError(f"The token folder {folder} belongs to another user; choose a folder of your own.")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if not tighten or info.st_mode & stat.S_ISVTX:
            raise TokenFileError(f"The token folder {folder} is one that others can write to; choose a private "
                                 "folder (mode 0700).")
        folder.chmod(0o700)
    return folder


def write_token(path: Path, tighten: bool = False) -> str:
    """Create a fresh random token in ``path``, readable by this user only (mode 0600).

    It is written to a new file with an unguessable name in the same private folder and
    renamed over ``path`` in one step, so no one sees a half-written token and no
    planted file or link is ever opened. A ``path`` that is a symlink is refused;
    ``tighten`` is :func:`private_dir`'s."""
    path = Path(path)
    private_dir(path.parent, tighten)
    if path.is_symlink():
        raise TokenFileError(f"The token file {path} is a symbolic link; remove it or choose another --token-file.")
    token = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)   # O_EXCL, mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return token


def read_token(path: Path) -> str:
    """Read a token written by :func:`write_token`; '' if there is none, or if the file is
    a link, or not this user's, or readable by others (then it was not ours)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return ""
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if sys.platform != "win32" and (info.st_uid != os.getuid() or info.st_mode & 0o077):
            return ""
        return f.read(1024).strip()
