"""The server's caps: what one request, or all clients together, may take.

One definition, read by the server and by ``serve``'s command line (README, "Security").
"""

from __future__ import annotations

from dataclasses import dataclass

from sketch2mesh_addon import protocol


@dataclass(frozen=True)
class Limits:
    """What one client, or all of them together, may take. The defaults are safe for a
    desktop; ``serve`` exposes the ones a user may need to change."""

    max_frame: int = protocol.DEFAULT_MAX_FRAME          # bytes in one frame
    max_strokes: int = protocol.MAX_STROKES              # strokes in one sketch
    max_points: int = protocol.MAX_POINTS                # points in one sketch
    max_fit_faces: int = protocol.MAX_FIT_FACES          # triangles in one Fit to strokes
    max_connections: int = 32                           # authenticated connections
    max_unauthenticated: int = 16                       # connections still owing their token
    max_queued_jobs: int = 8                            # jobs waiting behind the running one
    max_bytes_in_flight: int = protocol.DEFAULT_MAX_FRAME + (64 << 20)  # payload bytes being read at once
    first_frame_s: float = 5.0                          # a new connection's header must arrive by then
    idle_s: float = 120.0                               # an authenticated connection's wait for its next frame
    min_rate: float = 8 << 20                           # payload bytes per second a sender must keep up
    heartbeat_s: float = 1.0                            # most silence on a job's connection
    room_wait_s: float = 5.0                            # how long a payload waits for bytes in flight (well
                                                        # under the add-on's 10 s silence timeout)
    stall_s: float = 300.0                              # a running job silent this long is given up

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"the server's {name.replace('_', '-')} must be positive, not {value}")
        if self.max_bytes_in_flight < self.max_frame:
            raise ValueError("the bytes in flight must leave room for at least one whole frame")
