"""Replies: a job's work done by the core and its outcome put into the wire's words.

A request's parameters are read into the core's keyword arguments; a reconstruct or fit
runs through :mod:`model_server.reconstruct.pipeline` and its result becomes a result
reply (a summary and arrays); whatever stops a job becomes an error reply with a code
and a sentence (:func:`failure`): a cancel, the core's :class:`Refused`, memory running
out, or anything else.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from typing import Callable

import numpy as np

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

from model_server import interrupt
from model_server.errors import Refused
from model_server.geometry.mesh import edge_defects
from model_server.reconstruct import backends, pipeline
from model_server.service.refusals import Reply, cancelled

Progress = Callable[..., None]              # (message, fraction[, vertices])


def read_reconstruct_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.reconstruct_strokes`, validated."""
    return {
        "backend": protocol.check_choice(params, "backend", protocol.BACKENDS, backends.DEFAULT_BACKEND),
        "roundness": protocol.check_float(params, "roundness", *protocol.ROUNDNESS_RANGE, backends.DEFAULT_ROUNDNESS),
        "detail": protocol.check_choice(params, "detail", protocol.DETAILS, "medium"),
        "refine": protocol.check_int(params, "refine", 0, protocol.MAX_FIT_ITERATIONS, 0),
    }


def read_fit_params(params: dict) -> dict:
    """The keyword arguments of :func:`pipeline.fit_strokes`, validated."""
    return {"iterations": protocol.check_int(params, "iterations", 1, protocol.MAX_FIT_ITERATIONS, 200)}


def progress(request_id: str, message: str, fraction: float, vertices: np.ndarray | None = None) -> Reply:
    """A progress reply; a fit's carries its current vertices."""
    arrays = None if vertices is None else {"vertices": np.asarray(vertices, np.float32)}
    return protocol.make_reply(request_id, "progress", message=message, fraction=float(fraction)), arrays


def reconstruct(request_id: str, strokes: dict, params: dict, device: str, weights, progress: Progress,
                say: Callable[..., None]) -> Reply:
    """Reconstruct the sketch: the result's summary, and its mesh as arrays."""
    result = pipeline.reconstruct_strokes(strokes, device=device, progress=progress, weights=weights, **params)
    say(f"job {request_id}: surface from {result.fusion}", key="job surface")
    return (protocol.make_reply(request_id, "result", result=result.summary()),
            {"vertices": result.vertices, "faces": result.faces})


def fit(request_id: str, mesh: tuple[np.ndarray, np.ndarray], strokes: dict, params: dict, device: str,
        progress: Progress) -> Reply:
    """Fit the mesh to the sketch: the fit's summary (a cancel stops it with the best shape
    so far), a warning when the mesh is not closed and manifold, and the fitted vertices."""
    vertices, faces = mesh
    started = time.perf_counter()
    fitted = pipeline.fit_strokes(vertices, faces, strokes, device=device, progress=progress, **params)
    defects = protocol.mesh_warning(*edge_defects(faces))
    summary = {"device": device, "vertices": int(len(vertices)), "fit": fitted.summary,
               "warnings": [defects] if defects else [],
               "timings_s": {"refine": time.perf_counter() - started}}
    return protocol.make_reply(request_id, "result", result=summary), {"vertices": fitted.vertices}


def failure(request_id: str, exc: Exception, what: str, device: str, say: Callable[..., None]) -> Reply:
    """The error reply for a job that ``exc`` stopped; ``what`` names the job in the
    sentence ('Reconstruction', 'Fit to strokes'). Memory running out frees what it can."""
    if isinstance(exc, interrupt.Interrupted):
        return cancelled(request_id)
    if isinstance(exc, (ProtocolError, Refused)):
        return protocol.error_reply(request_id, exc.code, exc.message), None
    if out_of_memory(exc):
        say(f"job {request_id} ran out of memory: {exc}", key="out of memory")
        free_device_memory()
        return protocol.error_reply(request_id, "out_of_memory", (
            f"{what} ran out of {'GPU ' if device == 'cuda' else ''}memory; try a lower detail or a "
            "smaller mesh, or start the server with --device cpu.")), None
    say(f"job {request_id} failed:\n" + "".join(traceback.format_exception(exc)), key="job failed")
    return protocol.error_reply(request_id, "internal", f"{what} failed inside the server: {exc}"), None


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says memory ran out: a MemoryError, or torch's (CUDA) OutOfMemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def free_device_memory() -> None:
    """Collect garbage and hand the GPU's cached blocks back, after a job ran out of memory."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
