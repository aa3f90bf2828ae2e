"""The shell of the operators that run a job: prepare the work, run it, use the result.

Invoked from the UI, such an operator runs a :class:`jobs.Job` in a worker thread and
polls it from a modal timer, so Blender never blocks; Esc or the panel's Cancel button
cancels. What each tick or key press does is decided by a bpy-free
:class:`job_flow.JobFlow`; :class:`JobOperator` only applies its steps. Executed from a
script or in background mode the work runs synchronously, and an error is reported,
which bpy turns into a RuntimeError.
"""

from __future__ import annotations

import threading
import time

import bpy
import numpy as np

from . import client, job_flow, jobs, server_process, server_setup

TIMER_S = 0.1


def tag_redraw(context: bpy.types.Context) -> None:
    """Redraw the 3D views and the preferences, where a job's progress shows."""
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("VIEW_3D", "PREFERENCES"):
                area.tag_redraw()


class JobOperator:
    """Shared machinery of the operators that run a job: ``prepare`` checks the input and
    returns the work; ``execute`` (scripts, background mode) runs it here, ``invoke`` (the
    UI) runs it in a worker thread that a :class:`job_flow.JobFlow` polls from a modal
    timer; ``finish`` uses the result. The flow decides; these methods only apply its steps."""

    job_title = ""
    _timer = None
    _flow: job_flow.JobFlow | None = None
    _preview: jobs.Latest | None = None

    def prepare(self, context: bpy.types.Context) -> jobs.Work | None:
        """The job's work, or None after reporting why the input is unusable."""
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        work = self.prepare(context)
        if work is None:
            return {"CANCELLED"}
        try:
            result = self.run_sync(work)
        except (client.ServerError, server_process.ServerStartError, server_setup.SetupError, OSError) as exc:
            self.abandon(context)
            self.report({"ERROR"}, jobs.user_message(exc))
            return {"CANCELLED"}
        return self.finish(context, result)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background:
            return self.execute(context)
        work = self.prepare(context)
        if work is None:
            return {"CANCELLED"}
        return self.start_job(context, self.job_title, work)

    def start_job(self, context: bpy.types.Context, title: str, work: jobs.Work) -> set[str]:
        try:
            job = jobs.submit(title, work)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self._flow = job_flow.JobFlow(job, time.monotonic, self._preview)
        self._timer = context.window_manager.event_timer_add(TIMER_S, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def run_sync(self, work: jobs.Work):
        """Run ``work`` on this thread; progress goes to the console in background mode."""
        def progress(message: str, fraction: float) -> None:
            if bpy.app.background:
                print(f"[sketch2mesh {fraction:4.0%}] {message}", flush=True)

        return work(progress, threading.Event())

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "TIMER":
            flow_event = job_flow.Event.TICK
        elif event.type == "ESC" and event.value == "PRESS":
            flow_event = job_flow.Event.ESC
        else:
            flow_event = job_flow.Event.OTHER
        return self.apply_step(context, self._flow.handle(flow_event))

    def cancel(self, context: bpy.types.Context) -> None:
        self.apply_step(context, self._flow.abort())

    def apply_step(self, context: bpy.types.Context, step: job_flow.Step) -> set[str]:
        """Do what the flow said, in the order :class:`job_flow.Step` gives."""
        if step.live is not None:
            self.show_live(context, step.live)
        if step.status is not None:
            if context.workspace is not None:
                context.workspace.status_text_set(step.status)
            tag_redraw(context)
        if step.ended:
            self._end(context)
        if step.restore:
            self.abandon(context)
        if step.report is not None:
            self.report({step.report.level}, step.report.message)
        if step.result is not None:
            return self.finish(context, step.result)
        return {step.returns}

    def show_live(self, context: bpy.types.Context, vertices: np.ndarray) -> None:
        """Show intermediate vertices the job streamed (Fit to strokes does)."""

    def abandon(self, context: bpy.types.Context) -> None:
        """Undo anything shown while the job ran, when it ends without a result."""

    def _end(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        tag_redraw(context)

    def finish(self, context: bpy.types.Context, result) -> set[str]:
        raise NotImplementedError
