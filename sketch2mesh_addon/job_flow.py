"""The interactive job's state machine, without bpy, so it can be tested.

A UI operator starts a :class:`jobs.Job` and hands it to a :class:`JobFlow`. For each
Blender event it calls :meth:`JobFlow.handle` (or :meth:`JobFlow.abort` when Blender
cancels the operator) and applies the :class:`Step` it gets back: what to draw, which
live vertices to show, what to report, whether to restore or apply a result, and what
``modal()`` returns. Blender itself only runs this loop with a window: in background
mode timers never fire, so the tests drive it with a fake clock and a fake event pump.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from . import jobs

RUNNING = "RUNNING_MODAL"
PASS_THROUGH = "PASS_THROUGH"
FINISHED = "FINISHED"
CANCELLED = "CANCELLED"


class Event(enum.Enum):
    """What the operator saw: its timer, an Esc press, or anything else (not the job's)."""

    TICK = "tick"
    ESC = "esc"
    OTHER = "other"


@dataclass(frozen=True)
class Report:
    """One sentence for ``Operator.report``; ``level`` is INFO, WARNING or ERROR."""

    level: str
    message: str


@dataclass(frozen=True)
class Step:
    """What to do for one event, in this order: show ``live`` vertices, draw ``status``
    and ``fraction`` (None leaves the status bar as it is), end the job's UI (timer,
    status bar) if ``ended``, ``restore`` what the live updates changed, ``report``,
    apply ``result``, and return ``returns`` from ``modal()``."""

    returns: str = RUNNING
    status: str | None = None
    fraction: float = 0.0
    live: Any = None
    ended: bool = False
    restore: bool = False
    report: Report | None = None
    result: Any = None

    @property
    def pushes_undo(self) -> bool:
        """Whether this step makes one undo step: Blender pushes it when ``modal()`` of an
        operator with UNDO in ``bl_options`` returns FINISHED, which only a result does."""
        return self.returns == FINISHED


def progress_text(job: jobs.Job) -> str:
    """The job's progress in words, shared by the status bar and the panel."""
    return f"{job.title}: cancelling" if job.cancel.is_set() else f"{job.title}: {job.message}"


class JobFlow:
    """The life of one interactive job: poll it on each tick, cancel it on Esc, and end it
    with its result (a cancelled fit's best shape counts) or with a restore and a report.

    ``clock`` returns seconds (``time.monotonic``); ``live`` is where the worker puts the
    newest intermediate vertices of a fit, each handed out once."""

    def __init__(self, job: jobs.Job, clock: Callable[[], float], live: jobs.Latest | None = None):
        self.job = job
        self.clock = clock
        self.live = live
        self.started = clock()
        self.ended = False

    def handle(self, event: Event) -> Step:
        """The step for one event; events that are not the job's pass through untouched."""
        if self.ended or event is Event.OTHER:
            return Step(returns=PASS_THROUGH)
        if event is Event.ESC:
            self.job.cancel.set()
        if self.job.done.is_set():
            return self._end()
        live = self.live.take() if self.live is not None else None
        return Step(status=self.status(), fraction=self.job.fraction, live=live)

    def abort(self) -> Step:
        """Blender cancelled the operator (a file was loaded, the window closed): stop the
        job and put back what it changed, without a report. Nothing once the job ended."""
        if self.ended:
            return Step(returns=CANCELLED)
        self.ended = True
        self.job.cancel.set()
        return Step(returns=CANCELLED, ended=True, restore=True)

    def status(self) -> str:
        """The status-bar line: progress, time so far, and how to cancel."""
        elapsed = f"{self.clock() - self.started:.0f} s"
        if self.job.cancel.is_set():
            return f"{progress_text(self.job)}, {elapsed}"
        return f"{progress_text(self.job)} ({self.job.fraction:.0%}), {elapsed}  (Esc to cancel)"

    def _end(self) -> Step:
        """The job is done: its result (even a cancelled fit's best shape), else a
        restore and one sentence saying it was cancelled or why it failed."""
        self.ended = True
        job = self.job
        if job.error is None and job.result is not None:
            return Step(returns=FINISHED, ended=True, result=job.result)
        if job.cancelled:
            report = Report("INFO", f"{job.title} cancelled.")
        else:
            report = Report("ERROR", jobs.user_message(job.error or RuntimeError("the job ended without a result")))
        return Step(returns=CANCELLED, ended=True, restore=True, report=report)
