"""Soak the model server: many real requests over real connections; count failures, time them, watch memory.

Usage (from the repository root, in the server environment):

    python benchmarks/soak.py [--sequential 500] [--mixed 500] [--clients 4] [--baseline REV]
    python benchmarks/soak.py --short        # the CI variant (about a minute)

Phase 1 sends ``--sequential`` reconstructs one after another (hull backend, low detail:
the soak is about the service, not the network). Phase 2 sends ``--mixed`` requests
from ``--clients`` threads at once, each on its own connection: reconstructs, fits,
pings, requests that must be refused (a bad sketch, a wrong token), and jobs cancelled
while they run. A request fails when it gets anything but its expected answer; ``busy``
is expected only in phase 2 and is retried. The server's RSS is read at the start, after
the warm-up (one request of every kind, then the first tenth of phase 1), and at the end; the growth after warm-up must
stay under 5%. ``--baseline REV`` runs the same soak on another revision (a temporary git
worktree) first, for comparison on the same machine. Exits 1 when a run fails its bar.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sketch2mesh_addon import client, protocol  # noqa: E402

HOST = "127.0.0.1"
GROWTH_LIMIT = 0.05
BUSY_RETRIES = 200


def ring(cx: float, cy: float, rx: float, ry: float, n: int = 120) -> np.ndarray:
    """An ellipse of ``n`` points, as a stroke."""
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


SKETCH = {"front": [ring(2.0, 1.0, 0.6, 0.9)], "side": [ring(-1.0, 1.0, 0.4, 0.9)]}
TOP_ONLY = {"top": [ring(0.0, 0.0, 0.5, 0.5)]}


def ellipsoid(n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A UV ellipsoid inside the sketch's outline (to fit outward onto it)."""
    theta, phi = np.meshgrid(np.linspace(0.1, np.pi - 0.1, n), np.linspace(0, 2 * np.pi, n, endpoint=False), indexing="ij")
    points = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], -1).reshape(-1, 3)
    vertices = np.concatenate([points, [[0, 0, 1], [0, 0, -1]]]) * [0.5, 0.3, 0.8] + [2.0, -1.0, 1.0]
    faces = []
    for i in range(n - 1):
        for j in range(n):
            a, b, c, d = i * n + j, i * n + (j + 1) % n, (i + 1) * n + j, (i + 1) * n + (j + 1) % n
            faces += [[a, c, b], [b, c, d]]
    top, bottom = n * n, n * n + 1
    faces += [[top, j, (j + 1) % n] for j in range(n)]
    faces += [[bottom, (n - 1) * n + (j + 1) % n, (n - 1) * n + j] for j in range(n)]
    return vertices.astype(np.float32), np.asarray(faces, np.int32)


class Soaked:
    """A server process started from ``tree``, its output in ``folder``."""

    def __init__(self, tree: Path, folder: Path):
        token_file, output = folder / "soak.token", folder / "server.out"
        with open(output, "w") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "model_server", "serve", "--port", "0", "--device",
                                          "cpu", "--token-file", str(token_file)], cwd=tree, stdout=out,
                                         stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(tree)))
        deadline = time.monotonic() + 120
        while "ready on" not in output.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start: {output.read_text()[-500:]}")
            time.sleep(0.1)
        line = next(x for x in output.read_text().splitlines() if "ready on" in x)
        self.port = int(line.split("ready on ")[1].split()[0].rsplit(":", 1)[1])
        self.token = protocol.read_token(token_file)

    def rss_mb(self) -> float:
        """Resident memory of the server and its helper processes (Poisson), in MB."""
        total, pids = 0.0, [self.proc.pid]
        while pids:
            pid = pids.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            total += next((int(x.split()[1]) / 1024 for x in status.splitlines() if x.startswith("VmRSS:")), 0.0)
            pids += [int(c) for c in children]
        return total

    def stop(self) -> None:
        """End the server (and its helper with it)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def one(server: Soaked, kind: str, mixed: bool) -> tuple[bool, float]:
    """One request of ``kind``; (whether it got its expected answer, seconds). A failure
    is printed with what came back instead, so a rare one can be told apart."""
    started = time.perf_counter()
    for _ in range(BUSY_RETRIES):
        try:
            good = _request(server, kind)
            if not good:
                print(f"soak: {kind} got an unexpected answer", file=sys.stderr, flush=True)
            return good, time.perf_counter() - started
        except client.ServerError as exc:
            if not (mixed and exc.code == "busy"):
                print(f"soak: {kind} failed: {exc.code}: {exc.message}", file=sys.stderr, flush=True)
                break
            time.sleep(0.05)
    return False, time.perf_counter() - started


def _request(server: Soaked, kind: str) -> bool:
    port, token = server.port, server.token
    if kind == "reconstruct":
        result = client.reconstruct(HOST, port, token, SKETCH, backend="hull", detail="low")
        good = len(result.faces) > 100 and abs(result.vertices[:, 0].mean() - 2.0) < 0.1
        if not good:
            print(f"soak: reconstruct gave {len(result.faces)} faces, mean x {result.vertices[:, 0].mean():.3f}",
                  file=sys.stderr, flush=True)
        return good
    if kind == "fit":
        vertices, faces = ellipsoid()
        result = client.fit(HOST, port, token, vertices, faces, SKETCH, iterations=20)
        return result.vertices.shape == vertices.shape and bool(np.isfinite(result.vertices).all())
    if kind == "ping":
        return client.ping(HOST, port, token).get("protocol") == protocol.PROTOCOL_VERSION
    if kind == "bad sketch":
        try:
            client.reconstruct(HOST, port, token, TOP_ONLY, backend="hull")
        except client.ServerError as exc:
            return exc.code == "bad_input"
        return False
    if kind == "wrong token":
        try:
            client.ping(HOST, port, "not-the-token")
        except client.ServerError as exc:
            return exc.code == "bad_token"
        return False
    if kind == "cancel":
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        try:
            client.reconstruct(HOST, port, token, SKETCH, backend="hull", detail="high", refine=500, cancel=cancel)
        except client.Cancelled:
            return True
        return False
    raise ValueError(kind)


MIX = ["reconstruct"] * 4 + ["fit"] * 2 + ["ping"] * 2 + ["bad sketch", "wrong token", "cancel"]


def soak(tree: Path, sequential: int, mixed: int, clients: int) -> dict:
    """Run both phases against a server from ``tree``; the figures for the table."""
    with tempfile.TemporaryDirectory() as folder:
        server = Soaked(tree, Path(folder))
        try:
            rss = {"start": server.rss_mb()}
            for kind in dict.fromkeys(MIX):          # warm-up: every kind of request once (fit loads torch)
                one(server, kind, mixed=False)
            seq = []
            for i in range(sequential):
                seq.append(one(server, "reconstruct", mixed=False))
                if i + 1 == max(1, sequential // 10):
                    rss["warm"] = server.rss_mb()
            rng = random.Random(0)
            kinds = [rng.choice(MIX) for _ in range(mixed)]
            results: list[tuple[bool, float]] = []
            lock = threading.Lock()

            def worker(share: list[str]) -> None:
                for kind in share:
                    outcome = one(server, kind, mixed=True)
                    with lock:
                        results.append(outcome)

            threads = [threading.Thread(target=worker, args=(kinds[k::clients],)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rss["end"] = server.rss_mb()
            alive = server.proc.poll() is None and one(server, "ping", mixed=False)[0]
        finally:
            server.stop()
    return {"sequential": seq, "mixed": results, "rss": rss, "alive": alive}


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile, NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


def report(name: str, figures: dict) -> bool:
    """Print the run's rows; True when it meets the bar."""
    rss = figures["rss"]
    growth = (rss["end"] - rss["warm"]) / rss["warm"]
    ok = figures["alive"] and growth < GROWTH_LIMIT
    for phase in ("sequential", "mixed"):
        outcomes = figures[phase]
        failures = sum(not good for good, _ in outcomes)
        seconds = [s for _, s in outcomes]
        ok &= failures == 0
        print(f"| {name} | {phase} | {len(outcomes)} | {failures} | {percentile(seconds, 50):.3f} | "
              f"{percentile(seconds, 99):.3f} | {rss['start']:.0f} | {rss['warm']:.0f} | {rss['end']:.0f} | "
              f"{100 * growth:+.1f}% |")
    return ok


def main() -> int:
    """Soak the revisions asked for, print the table; 1 when this tree misses the bar."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=500)
    parser.add_argument("--mixed", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--short", action="store_true", help="the CI variant: 60 sequential and 60 mixed requests")
    parser.add_argument("--baseline", help="also soak this git revision, first")
    args = parser.parse_args()
    if args.short:
        args.sequential, args.mixed = 60, 60
    runs = []
    if args.baseline:
        tree = Path(tempfile.mkdtemp(prefix="soak-baseline-"))
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            runs.append((f"baseline {args.baseline}", soak(tree, args.sequential, args.mixed, args.clients)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    started = time.perf_counter()
    runs.append(("this tree", soak(ROOT, args.sequential, args.mixed, args.clients)))
    print(f"\nSoak: {args.sequential} sequential reconstructs, then {args.mixed} mixed requests over {args.clients} "
          f"concurrent connections ({time.perf_counter() - started:.0f} s for this tree)\n")
    print("| run | phase | requests | failures | p50 s | p99 s | RSS start MB | RSS after warm-up MB | RSS end MB | growth after warm-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    verdicts = [report(name, figures) for name, figures in runs]
    print(f"\nBar (this tree): 0 failures, alive at the end, RSS growth after warm-up < {GROWTH_LIMIT:.0%}: "
          f"{'met' if verdicts[-1] else 'MISSED'}")
    return 0 if verdicts[-1] else 1


if __name__ == "__main__":
    sys.exit(main())
