"""The server's log stays small whatever clients do: rate-limited by kind, rotated by size."""

from __future__ import annotations

import io

from model_server.service.log import ServerLog


def test_repeated_messages_are_rate_limited_and_summed_up():
    now = [0.0]
    stream = io.StringIO()
    log = ServerLog(stream=stream, burst=3, window_s=60.0, clock=lambda: now[0])
    for i in range(1000):
        log.say(f"refused a frame {i}", key="refused bad_header")
    log.say("job done", key="job done")
    assert stream.getvalue().count("refused a frame") == 3 and "job done" in stream.getvalue()
    now[0] = 61.0
    log.say("refused a frame again", key="refused bad_header")
    text = stream.getvalue()
    assert "997 more 'refused bad_header' messages" in text and "refused a frame again" in text
    log.close()


def test_messages_without_a_key_are_always_written():
    stream = io.StringIO()
    log = ServerLog(stream=stream, burst=1)
    for _ in range(5):
        log.say("ready")
    assert stream.getvalue().count("ready") == 5
    log.close()


def test_the_log_file_rotates(tmp_path):
    path = tmp_path / "server.log"
    log = ServerLog(path, max_bytes=2_000, backups=2)
    for i in range(500):
        log.say(f"line {i} " + "x" * 40)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["server.log", "server.log.1", "server.log.2"]
    assert all((tmp_path / f).stat().st_size <= 2_100 for f in files)
    assert "line 499" in path.read_text()
