"""How to surface the round prior's field: directly, or through its 14 maps and Poisson?

Usage (from the repository root, in the server environment):

    python benchmarks/bench_round_surfacing.py [--meshes ../shared/eval-meshes] [--repeats 1]

Both start from the same sketch and the same :class:`RoundField`:

- ``direct``: the field's own surface (surface nets, Newton steps onto f = 0), decimated and
  cleaned like a fused mesh (``fusion.close_mesh``);
- ``maps``: the field rendered into the 14 views' maps (``round_maps``), fused by the
  project's fusion (screened Poisson), as every backend's maps are.

Each real model is sketched clean (front and side) and both surfaces are scored against it
(``evaluation.evaluate.score``) and timed in the same run. The table ends with the means.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import mesh_cases, score  # noqa: E402
from model_server.geometry.views import RESOLUTION  # noqa: E402
from model_server.reconstruct import fusion  # noqa: E402
from model_server.reconstruct.backends.hull import hull_mesh  # noqa: E402
from model_server.reconstruct.backends.round import RoundField, round_maps  # noqa: E402
from model_server.sketch.png import resample_ink  # noqa: E402
from model_server.sketch.read import read_sketch  # noqa: E402

ROUTES = ("direct", "maps")
KEYS = (("chamfer", "Chamfer", "{:.4f}"), ("volume_iou", "vIoU", "{:.3f}"),
        ("normal_consistency", "NC", "{:.3f}"), ("time_s", "time s", "{:.2f}"), ("faces", "faces", "{:.0f}"))


def surface(route: str, silhouettes: dict[str, np.ndarray], detail: str = "medium") -> tuple[np.ndarray, np.ndarray]:
    """The round prior's mesh of ``silhouettes`` by one route."""
    if route == "direct":
        return fusion.close_mesh(*hull_mesh(RoundField(silhouettes)), detail)
    fused = fusion.fuse(round_maps(silhouettes), detail)
    return fused.vertices, fused.faces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=Path, default=ROOT.parent / "shared" / "eval-meshes")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per route (the median is kept)")
    args = parser.parse_args()

    rows: dict[str, list[dict]] = {route: [] for route in ROUTES}
    print(f"{'shape':<16}" + "".join(f"{route + ' ' + head:>18}" for _, head, _ in KEYS for route in ROUTES))
    for shape_id, load in mesh_cases(args.meshes, "y", "clean"):
        case = load(np.random.default_rng(0))
        sketch = read_sketch({view: resample_ink(ink, RESOLUTION) for view, ink in case.inks.items()}, {})
        cells = {}
        for route in ROUTES:
            times = []
            for _ in range(max(1, args.repeats)):
                started = time.perf_counter()
                vertices, faces = surface(route, sketch.silhouettes)
                times.append(time.perf_counter() - started)
            row = score(vertices, faces, case, np.random.default_rng(1)) | {"time_s": float(np.median(times)),
                                                                             "faces": len(faces)}
            rows[route].append(row)
            cells[route] = row
        print(f"{shape_id:<16}" + "".join(f"{fmt.format(cells[route][key]):>18}" for key, _, fmt in KEYS
                                          for route in ROUTES), flush=True)
    print(f"{'mean':<16}" + "".join(f"{fmt.format(np.mean([r[key] for r in rows[route]])):>18}" for key, _, fmt in KEYS
                                    for route in ROUTES))


if __name__ == "__main__":
    main()
