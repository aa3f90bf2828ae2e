"""Jobs: the worker-thread side of the UI's non-blocking operators."""

from __future__ import annotations

import threading

import pytest

from sketch2mesh_addon import client, jobs, server_process

WAIT_S = 120


def _finish(job: jobs.Job) -> jobs.Job:
    assert job.done.wait(WAIT_S), "the job did not finish"
    return job


def test_work_runs_off_the_calling_thread_and_reports_progress():
    caller = threading.get_ident()

    def work(progress, cancel):
        progress("Halfway", 0.5)
        return threading.get_ident()

    job = _finish(jobs.submit("Test", work))
    assert job.result != caller
    assert (job.message, job.fraction, job.error) == ("Halfway", 0.5, None)
    assert job.status_line() == "Test: Halfway (50%)"


def test_only_one_job_runs_at_a_time_and_cancel_reaches_the_work():
    started = threading.Event()

    def work(progress, cancel):
        started.set()
        if not cancel.wait(WAIT_S):
            raise AssertionError("never cancelled")
        raise client.Cancelled("cancelled", "Cancelled.")

    job = jobs.submit("Long", work)
    assert started.wait(WAIT_S)
    assert jobs.current() is job
    with pytest.raises(RuntimeError, match="busy"):
        jobs.submit("Second", work)
    assert jobs.cancel_current()
    assert _finish(job).cancelled
    assert jobs.current() is None


def test_errors_become_one_sentence():
    def work(progress, cancel):
        raise client.ServerUnreachable("unreachable", client.unreachable_message("127.0.0.1", 1))

    job = _finish(jobs.submit("Fail", work))
    assert jobs.user_message(job.error) == client.unreachable_message("127.0.0.1", 1)
    assert jobs.user_message(ValueError("boom")) == "Sketch2Mesh failed: boom"


@pytest.mark.slow
def test_reconstruct_work_returns_the_mesh_from_a_real_server(server, box):
    settings = server_process.Settings(port=server["port"], auto_start=False)
    job = _finish(jobs.submit("Reconstruct", jobs.reconstruct_work(settings, box, "hull", "low", 0)))
    assert job.error is None, job.error
    assert len(job.result.faces) > 0 and job.fraction > 0.0


@pytest.mark.slow
def test_cancelling_a_reconstruction_leaves_no_result(server, box):
    settings = server_process.Settings(port=server["port"], auto_start=False)
    work = jobs.reconstruct_work(settings, box, "hull", "high", 0)

    def cancel_on_first_progress(progress, cancel):
        def relay(message, fraction):  # cancel as soon as the server reports
            progress(message, fraction)
            if message != "Connecting to the server":
                cancel.set()
        return work(relay, cancel)

    job = _finish(jobs.submit("Reconstruct", cancel_on_first_progress))
    assert job.cancelled and job.result is None
