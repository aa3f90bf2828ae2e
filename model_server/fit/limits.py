"""How many iterations one fit may run, and the check every entry point shares.

Kept apart from the optimiser so that checking a request's options does not import torch.
"""

from __future__ import annotations

from model_server.errors import BAD_REQUEST, Refused

MAX_ITERATIONS = 10_000


def check_iterations(iterations: int, option: str, minimum: int = 0) -> None:
    """Refuse an iteration count outside ``minimum..MAX_ITERATIONS``; ``option`` names it for the user."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not minimum <= iterations <= MAX_ITERATIONS:
        raise Refused(BAD_REQUEST, f"{option} must be {minimum}..{MAX_ITERATIONS} iterations, not {iterations}")
