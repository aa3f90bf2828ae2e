"""The add-on's socket client against a real server process."""

from __future__ import annotations

import threading

import pytest

from sketch2mesh_addon import client, protocol

HOST = "127.0.0.1"


def _token(server) -> str:
    return protocol.read_token(protocol.token_path(server["port"]))


def test_unreachable_server_names_the_address_and_the_fix(unused_port):
    port = unused_port
    with pytest.raises(client.ServerUnreachable) as error:
        client.ping(HOST, port, "anything")
    assert str(error.value) == client.unreachable_message(HOST, port)
    assert "Server Python preference" in str(error.value)


@pytest.mark.slow
def test_ping_answers_with_the_server_status(server):
    status = client.ping(HOST, server["port"], _token(server))
    assert status["protocol"] == protocol.PROTOCOL_VERSION
    assert status["pid"] == server["process"].pid


@pytest.mark.slow
def test_wrong_token_is_a_clear_sentence(server):
    with pytest.raises(client.ServerError) as error:
        client.ping(HOST, server["port"], "wrong")
    assert error.value.code == "bad_token"
    assert str(error.value) == client.bad_token_message(HOST, server["port"])


@pytest.mark.slow
def test_reconstruct_streams_progress_then_returns_a_mesh(server, box):
    seen: list[tuple[str, float]] = []
    result = client.reconstruct(HOST, server["port"], _token(server), box, backend="hull",
                                detail="low", on_progress=lambda m, f: seen.append((m, f)))
    assert result.vertices.shape[1] == 3 and result.faces.shape[1] == 3 and len(result.faces) > 0
    assert result.faces.max() < len(result.vertices)
    assert result.info["backend"] == "hull" and result.info["faces"] == len(result.faces)
    assert seen and all(0.0 <= f <= 1.0 for _, f in seen)


@pytest.mark.slow
def test_cancel_stops_the_job_and_the_server_keeps_serving(server, box):
    cancel = threading.Event()
    with pytest.raises(client.Cancelled):
        client.reconstruct(HOST, server["port"], _token(server), box, detail="high",
                           on_progress=lambda m, f: cancel.set(), cancel=cancel)
    assert client.ping(HOST, server["port"], _token(server))["protocol"] == protocol.PROTOCOL_VERSION


@pytest.mark.slow
def test_bad_sketch_is_answered_with_the_servers_sentence(server, box):
    with pytest.raises(client.ServerError, match="Only the top view is drawn") as error:
        client.reconstruct(HOST, server["port"], _token(server), {"top": box["front"]})
    assert error.value.code == "bad_input"


@pytest.mark.slow
def test_one_view_alone_returns_a_mesh_and_the_servers_note(server, box):
    result = client.reconstruct(HOST, server["port"], _token(server), {"side": box["side"]}, detail="low")
    assert len(result.faces) > 100 and result.faces.max() < len(result.vertices)
    assert any("truer shape" in note for note in result.info["notes"]), result.info
