"""Fit to strokes inside a reconstruction: what each sketched view asks of the fit
(:func:`fit_targets`), and a reconstruction refined by it (:func:`refine_result`), as the
snap and refine stages and the evaluation run it."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import numpy as np

from model_server.geometry.views import INPUT_VIEWS
from model_server.reconstruct.result import Result


def fit_targets(silhouettes: dict[str, np.ndarray], thin: dict[str, np.ndarray],
                strokes: dict[str, list[np.ndarray]]) -> dict:
    """Fit to strokes targets per view: the silhouette, its thin parts (which only the
    silhouette term shapes), and its outline strokes (the silhouette's edge where only
    an image was given)."""
    from model_server.fit.optimiser import FitTarget, outline_points

    targets = {}
    for view, mask in silhouettes.items():
        thin_part = thin.get(view, np.zeros_like(mask))
        outline = outline_points(mask, strokes.get(view, []), INPUT_VIEWS[view], exclude=thin_part)
        targets[view] = FitTarget(mask, outline, thin_part)
    return targets


def refine_result(result: Result, iterations: int, strokes: dict[str, list[np.ndarray]] | None = None,
                  device: str = "cpu", progress: Callable[[str, float], None] | None = None) -> Result:
    """Fit to strokes on a reconstruction still in the canonical frame: a new Result with
    the fitted vertices, ``fit`` filled in and the ``refine`` time added.

    ``strokes`` are the canonical view-plane strokes, when the sketch came as strokes;
    without them the silhouettes' edges stand in for the outline. A cancel stops the fit
    with its best shape so far (``fit.cancelled``)."""
    from model_server.fit.optimiser import fit_to_strokes

    t0 = time.perf_counter()
    if progress is not None:
        progress("Fitting to the strokes", 0.0)
    fitted = fit_to_strokes(result.vertices, result.faces, fit_targets(result.silhouettes, result.thin, strokes or {}),
                            iterations=iterations, device=device,
                            progress=None if progress is None else lambda message, fraction, _: progress(message, fraction))
    timings = dict(result.timings, refine=result.timings.get("refine", 0.0) + time.perf_counter() - t0)
    return replace(result, vertices=fitted.vertices, timings=timings, fit=fitted.summary())
