"""Design comparison at an equal training budget: learned backends' checkpoints beside the
two fixed priors (hull, round), on the same held-out shapes.

Issue 18 compared the field around the round prior (design "field", shipped) with the first
generation's per-view refinement of the hull's maps (design "refine", since removed) at
commit ea53c96, which still ran both: check it out to repeat that run. At HEAD the backend
loads field checkpoints only; ``--other`` names a second one (another run, another budget).

Usage (from the repository root, in the server environment):

    python benchmarks/compare_designs.py --data ~/.cache/sketch2mesh/procedural ~/.cache/sketch2mesh/real \\
        --field RUN_A.pt [--other RUN_B.pt] --hold-out mug,car,characters,lights,bathroom [--per-family 4]
        [--meshes ../shared/eval-meshes]

Both checkpoints should come from ``train`` runs given the same CPU time. Every shape is
rebuilt from its clean front and side sketches by each backend at the default detail, each
scored against the same ground-truth samples (``evaluation.evaluate``). One table per set:
the held-out families of each dataset, and the mesh folder when given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import dataset_cases, evaluate_backends, mesh_cases  # noqa: E402

COLUMNS = (("chamfer", "Chamfer", "{:.4f}"), ("volume_iou", "vIoU", "{:.3f}"),
           ("normal_consistency", "NC", "{:.3f}"), ("silhouette_iou", "sIoU", "{:.3f}"), ("time_s", "time s", "{:.2f}"))


def rows_for(cases, designs: dict[str, Path]) -> dict[str, list[dict]]:
    """Per column label (hull, round, then each design): one scored row per case."""
    out: dict[str, list[dict]] = {"hull": [], "round": [], **{name: [] for name in designs}}
    for shape_id, load in cases:
        first = True
        for name, weights in designs.items():
            backends = ("hull", "round", "learned") if first else ("learned",)
            rows = evaluate_backends(shape_id, load, backends, "medium", "cpu", np.random.default_rng(7),
                                     weights=weights)
            if first:
                out["hull"].append(rows["hull"])
                out["round"].append(rows["round"])
            out[name].append(rows["learned"])
            first = False
    return out


def table(title: str, rows: dict[str, list[dict]]) -> None:
    """Means over the shapes every column rebuilt; Chamfer also as a ratio to the hull's."""
    ok = [i for i in range(len(rows["hull"])) if all(r[i].get("ok") for r in rows.values())]
    print(f"\n{title}: {len(ok)} shapes" + (f" ({len(rows['hull']) - len(ok)} failed somewhere)"
                                           if len(ok) < len(rows["hull"]) else ""))
    print("| | " + " | ".join(h for _, h, _ in COLUMNS) + " | Chamfer × hull |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    hull_chamfer = np.mean([rows["hull"][i]["chamfer"] for i in ok]) if ok else float("nan")
    for name, column in rows.items():
        values = []
        for key, _, fmt in COLUMNS:
            if key == "silhouette_iou":
                v = np.mean([min(column[i]["silhouette_iou_front"], column[i]["silhouette_iou_side"]) for i in ok])
            else:
                v = np.mean([column[i][key] for i in ok])
            values.append(fmt.format(v))
        ratio = np.mean([column[i]["chamfer"] for i in ok]) / hull_chamfer
        print(f"| {name} | " + " | ".join(values) + f" | {ratio:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--field", type=Path, required=True, help="checkpoint of the field design")
    parser.add_argument("--other", type=Path, help="a second checkpoint to compare with")
    parser.add_argument("--hold-out", required=True, help="the families both runs left out")
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--meshes", type=Path)
    args = parser.parse_args()
    designs = {"field": args.field, **({"other": args.other} if args.other else {})}
    held_out = [f.strip() for f in args.hold_out.split(",") if f.strip()]
    for folder in args.data:
        cases = []
        for family in held_out:
            cases += dataset_cases(folder, "all", "clean", {family})[: args.per_family]
        if cases:
            table(f"{folder.name}, held-out families", rows_for(cases, designs))
    if args.meshes:
        table(f"{args.meshes.name}", rows_for(mesh_cases(args.meshes, "y", "clean"), designs))   # Y up as distributed


if __name__ == "__main__":
    main()
