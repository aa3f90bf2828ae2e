"""The pipeline's stage runner: every stage is timed into the result, and a cancel during
any stage stops the job before the next stage starts."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from model_server import interrupt
from model_server.reconstruct import pipeline

STAGE_NAMES = [stage.name for stage in pipeline.STAGES]
# The snap and trust stages only work on predicted surfaces (a backend whose outlines may
# drift from the sketch; none of the shipped ones does since the learned backend starts from
# the round prior, so the tests mark the learned one predicted); the refine stage only when asked.
SETTINGS = {"snap": {"backend": "learned"}, "trust": {"backend": "learned"}, "refine": {"backend": "hull", "refine": 30}}


@pytest.fixture
def predicted_learned(monkeypatch):
    """The learned backend, treated as one whose outlines may drift: the pipeline checks them."""
    from model_server.reconstruct.backends.learned import LearnedBackend

    monkeypatch.setattr(LearnedBackend, "predicted", True)


def test_the_stages_run_in_the_issues_order():
    assert STAGE_NAMES == ["rasterize", "predict", "fuse", "snap", "trust", "refine"]
    fractions = [stage.fraction for stage in pipeline.STAGES]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] < 1.0


def test_every_stage_is_timed(sketches, predicted_learned):
    hull = pipeline.reconstruct_strokes(sketches["box"], backend="hull", detail="low", refine=5)
    assert set(hull.timings) == {*STAGE_NAMES, "poisson", "total"}
    assert all(hull.timings[name] > 0 for name in ("rasterize", "predict", "fuse", "poisson", "refine"))
    assert hull.timings["snap"] == hull.timings["trust"] == 0.0          # the hull's outlines are the sketch's
    assert hull.timings["total"] >= sum(hull.timings[name] for name in (*STAGE_NAMES, "poisson"))

    learned = pipeline.reconstruct_strokes(sketches["sphere"], backend="learned", detail="low")
    assert set(learned.timings) == {*STAGE_NAMES, "poisson", "total"}
    assert learned.timings["snap"] > 0 and learned.timings["trust"] > 0 and learned.timings["refine"] == 0.0


def test_a_stage_that_does_not_apply_reports_no_progress(sketches):
    seen = []
    pipeline.reconstruct_strokes(sketches["box"], backend="hull", detail="low", progress=lambda m, f: seen.append(m))
    messages = {stage.message for stage in pipeline.STAGES if isinstance(stage.message, str)}
    assert messages & set(seen) == {"Reading the sketch", "Fusing the views into a surface"}
    assert seen[-1] == "Done"


@pytest.mark.parametrize("name", STAGE_NAMES)
def test_a_cancel_in_any_stage_stops_the_job_before_the_next_stage(monkeypatch, sketches, one_torch_thread, name,
                                                                   predicted_learned):
    """The cancel comes as the stage's work begins: that stage is the last to start, and the
    job ends in Interrupted, not a result."""
    event, started = threading.Event(), []

    def recorded(stage):
        def wrapped(job, progress):
            started.append(stage.name)
            if stage.name == name:
                event.set()
            return stage.run(job, progress)
        return wrapped

    monkeypatch.setattr(pipeline, "STAGES", tuple(replace(stage, run=recorded(stage)) for stage in pipeline.STAGES))
    settings = {"backend": "hull"} | SETTINGS.get(name, {})
    with interrupt.cancellable(event), pytest.raises(interrupt.Interrupted):
        pipeline.reconstruct_strokes(sketches["sphere"], detail="low", **settings)
    assert started[-1] == name and started.count(name) == 1
