"""Replies: the words a job's outcome is given on the wire, checked without a socket."""

from __future__ import annotations

import numpy as np
import pytest

from sketch2mesh_addon import protocol

from model_server import interrupt
from model_server.errors import Refused
from model_server.geometry.mesh import edge_defects
from model_server.reconstruct.result import Result
from model_server.service import replies

TETRAHEDRON = [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]


@pytest.mark.parametrize("faces, defects", [
    (TETRAHEDRON, (0, 0)),                               # closed: no warning
    (TETRAHEDRON[:3], (3, 0)),                           # open
    ([(0, 1, 2), (1, 0, 3), (0, 1, 4)], (6, 1)),         # an edge on three faces, and open ones
    (TETRAHEDRON + [(0, 1, 4), (1, 0, 4)], (0, 1)),      # closed but one edge on four faces
])
def test_the_server_counts_defects_with_its_own_geometry_as_the_add_on_does(faces, defects):
    """The server counts a mesh's open and over-shared edges with its geometry; the warning
    it words from them is the add-on's sentence for the same mesh."""
    faces = np.array(faces, np.int64)
    assert edge_defects(faces) == defects
    assert protocol.mesh_warning(*defects) == protocol.mesh_defects(faces)
    assert (protocol.mesh_warning(*defects) is None) == (defects == (0, 0))


@pytest.mark.parametrize("exc, code", [
    (interrupt.Interrupted(), "cancelled"),
    (Refused("bad_input", "The sketch has no extent."), "bad_input"),
    (protocol.ProtocolError("bad_request", "no such view"), "bad_request"),
    (MemoryError(), "out_of_memory"),
    (ValueError("boom"), "internal"),
])
def test_a_failure_becomes_one_error_reply(exc, code):
    said = []
    header, arrays = replies.failure("r1", exc, "Reconstruction", "cpu", lambda text, key=None: said.append(key))
    assert header["kind"] == "error" and header["error"]["code"] == code and arrays is None
    if code == "out_of_memory":
        assert header["error"]["message"].startswith("Reconstruction ran out of memory")
    if code == "internal":
        assert header["error"]["message"] == "Reconstruction failed inside the server: boom" and said == ["job failed"]


def test_a_results_summary_is_what_the_server_and_the_command_line_report():
    result = Result(vertices=np.zeros((5, 3), np.float32), faces=np.zeros((6, 3), np.int32),
                    timings={"fuse": 0.5}, backend="round", device="cpu", notes=["a note"], fusion="poisson")
    summary = result.summary()
    assert summary == {"backend": "round", "device": "cpu", "vertices": 5, "faces": 6, "timings_s": {"fuse": 0.5},
                       "notes": ["a note"], "fusion": "poisson"}
    assert list(summary) == ["backend", "device", "vertices", "faces", "timings_s", "notes", "fusion"]
    fitted = Result(**{**vars(result), "fit": {"iterations": 3}}).summary()
    assert fitted["fit"] == {"iterations": 3} and list(fitted)[-1] == "fit"
