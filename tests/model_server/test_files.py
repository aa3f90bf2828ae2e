"""Atomic writes: whole new file or the old one, no temporary left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_server.files import TEMPORARY_PATTERN, atomic_write, temporary_path


class Interrupted(Exception):
    pass


def test_a_finished_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("new")
        assert path.read_text() == "old" and temporary_path(path).exists()
    assert path.read_text() == "new" and list(tmp_path.iterdir()) == [path]


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(Interrupted):
        with atomic_write(path) as f:
            f.write(b"half")
            raise Interrupted
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_temporary_names_are_hidden_and_match_the_sweep_pattern(tmp_path: Path) -> None:
    tmp = temporary_path(tmp_path / "x.npz")
    assert tmp.parent == tmp_path and tmp.name.startswith(".x.npz.")
    tmp.write_bytes(b"")
    assert list(tmp_path.glob(TEMPORARY_PATTERN)) == [tmp]
    with pytest.raises(ValueError, match="for writing"):
        with atomic_write(tmp_path / "y", "ab"):
            pass
