"""The answers the service gives without the core: a full server's refusal and a job's
cancel. Kept apart from :mod:`replies` (which runs the core) so that the rooms that only
admit, budget and relay import no part of the core."""

from __future__ import annotations

from sketch2mesh_addon import protocol
from sketch2mesh_addon.protocol import ProtocolError

Reply = tuple[dict, "dict | None"]          # a header and its arrays


class Busy(ProtocolError):
    """The server cannot take this now; the sentence says why and when to retry."""

    def __init__(self, message: str, request_id: str = ""):
        super().__init__("busy", message)
        self.request_id = request_id


def cancelled(request_id: str) -> Reply:
    """The answer to a job that was cancelled before it had its own."""
    return protocol.error_reply(request_id, "cancelled", "The job was cancelled."), None
