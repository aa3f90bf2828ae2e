"""The core's one error: a refusal with a code and a sentence for the user.

Reading sketches, predicting, fusing and fitting raise :class:`Refused` when the input
cannot make a mesh (``bad_input``), an option is wrong (``bad_request``) or something
the job needs is missing (``unavailable``). The core knows nothing of the wire: the
service edge (``service/``, ``__main__.py``) turns a refusal into a protocol error reply
or a one-line message, with the same code and sentence.

A leaf module: it imports nothing, so every layer may raise it.
"""

from __future__ import annotations

BAD_INPUT = "bad_input"
BAD_REQUEST = "bad_request"
UNAVAILABLE = "unavailable"
CODES = (BAD_INPUT, BAD_REQUEST, UNAVAILABLE)


class Refused(Exception):
    """The job cannot be done as asked; ``message`` tells the user what to do instead."""

    def __init__(self, code: str, message: str):
        if code not in CODES:
            raise ValueError(f"unknown refusal code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
