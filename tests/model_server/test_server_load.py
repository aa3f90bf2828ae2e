"""Many clients at once against a real server process while a long job runs (issue 11)."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest
from server_harness import Server, ellipsoid_mesh, sketch_arrays

from sketch2mesh_addon import protocol

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform != "linux", reason="reads the server's memory from /proc")]

CLIENTS = 8


def test_eight_clients_while_a_long_job_runs_all_get_an_answer_or_busy_with_their_place(tmp_path):
    server = Server(tmp_path)
    try:
        base = server.warm_up()
        outcomes: dict[str, tuple[list[dict], protocol.Message]] = {}
        long_job = threading.Thread(target=lambda: outcomes.__setitem__("long", server.call(
            "reconstruct", {"backend": "hull", "detail": "high", "refine": 5000}, sketch_arrays(), request_id="long")))
        long_job.start()
        server.wait_for_job("long")
        mesh = protocol.pack_mesh(*ellipsoid_mesh(subdivisions=2))

        def client(k: int) -> None:
            op, params, arrays = (("fit", {"iterations": 10}, sketch_arrays() | mesh) if k % 3 == 2 else
                                  ("reconstruct", {"backend": "hull", "detail": "low"}, sketch_arrays()))
            outcomes[f"client-{k}"] = server.call(op, params, arrays, request_id=f"client-{k}", timeout=180)

        clients = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in clients:
            t.start()
        deadline = time.monotonic() + 60
        while len(server.call("ping")[1].header["result"]["jobs"]) < CLIENTS + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)     # long enough for every waiting client to hear its place at least once
        _, extra = server.call("reconstruct", {"backend": "hull"}, sketch_arrays())
        assert extra.header["error"]["code"] == "busy" and "queue is full" in extra.header["error"]["message"]
        assert server.call("cancel", {"target": "long"})[1].header["result"]["cancelled"]
        for t in [long_job, *clients]:
            t.join(240)
        assert not any(t.is_alive() for t in [long_job, *clients]), "a client never got its answer"
        for k in range(CLIENTS):
            progress, msg = outcomes[f"client-{k}"]
            assert msg.header["kind"] == "result", msg.header
            places = [p["queue_position"] for p in progress if "queue_position" in p]
            assert places and max(places) >= 1, f"client-{k} never heard its place in the queue"
            assert places == sorted(places, reverse=True), f"client-{k}'s place went back: {places}"
        assert outcomes["long"][1].header["error"]["code"] == "cancelled"
        assert server.rss_mb() - base < 300
        assert np.isfinite(outcomes["client-2"][1].arrays["vertices"]).all()
    finally:
        server.close()
