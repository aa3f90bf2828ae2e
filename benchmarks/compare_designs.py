"""Design comparison at an equal training budget: refine-the-hull (RefineNet) vs the
paper's sketch -> 14 decoders (MultiViewNet), beside the two priors without learning (the
hull and the round backend, at its default roundness), on the same shapes.

Usage (from the repository root, in the server environment):

    python benchmarks/compare_designs.py --data ~/.cache/sketch2mesh/data \\
        --refine RUN_A.pt --multiview RUN_B.pt [--families mug,car] [--per-family 4]

Both checkpoints should come from ``train`` runs given the same CPU time (the README's
recipe ran them side by side, one core each). Per shape, from its clean front and side
sketches (top drawn): the views' maps against the ground truth (depth L1 where both show
the object, mask IoU), then the mesh each design's maps fuse into (each backend's own fusion
settings; the learned ones' for the multi-view design), scored against the ground-truth
mesh (Chamfer, volumetric IoU, normal consistency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation import metrics  # noqa: E402
from model_server.geometry.maps import Maps  # noqa: E402
from model_server.learning.checkpoint import load_model  # noqa: E402
from model_server.learning.data.format import load_shape, read_index, read_meta  # noqa: E402
from model_server.learning.networks import INPUT_ORDER, network_input  # noqa: E402
from model_server.reconstruct import fusion  # noqa: E402
from model_server.reconstruct.backends.hull import HullBackend  # noqa: E402
from model_server.reconstruct.backends.learned import (FUSION_DEPTH_TOLERANCE_PX, FUSION_PRUNE_VOTES,  # noqa: E402
                                                      LearnedBackend)
from model_server.reconstruct.backends.round import RoundBackend  # noqa: E402
from model_server.sketch.read import read_sketch  # noqa: E402

DESIGNS = ("hull", "round", "refine", "multiview")


def multiview_maps(model: torch.nn.Module, inks: dict[str, np.ndarray]) -> Maps:
    """The paper's design: the sketch's ink straight to the 14 views' maps."""
    sketch = torch.from_numpy(np.stack([inks.get(v, np.zeros_like(inks["front"])) for v in INPUT_ORDER]))[None]
    with torch.inference_mode():
        out = model(network_input(sketch.float(), torch.tensor(["top" in inks]), model.config["in_views"]))
    mask = torch.sigmoid(out["mask_logit"][0]).numpy()
    return Maps(out["depth"][0].numpy() * (mask > 0.5), np.moveaxis(out["normal"][0].numpy(), 1, -1), mask)


def map_scores(maps: Maps, truth: Maps) -> tuple[float, float]:
    """Depth L1 where both show the object, and mask IoU, over the 14 views."""
    a, b = maps.foreground(), truth.foreground()
    both = a & b
    return float(np.abs(maps.depth - truth.depth)[both].mean()), float((a & b).sum() / max((a | b).sum(), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--refine", type=Path, required=True)
    parser.add_argument("--multiview", type=Path, required=True)
    parser.add_argument("--families", default="mug,car", help="held-out families to score")
    parser.add_argument("--seen", default="chair,quadruped,assembly", help="trained families (test split) to score")
    parser.add_argument("--per-family", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    meta = read_meta(args.data)
    style = meta["styles"].index("clean")
    predictors = {"hull": HullBackend(), "round": RoundBackend(), "refine": LearnedBackend(args.refine)}
    multiview = load_model(args.multiview)
    groups = {"held-out": args.families.split(","), "seen (test split)": args.seen.split(",")}
    print("group | design | depth L1 | mask IoU | Chamfer | vIoU | NC | built")
    print("--- | --- | --- | --- | --- | --- | --- | ---")
    for group, families in groups.items():
        rows = {d: [] for d in DESIGNS}
        for family in families:
            split = "test" if group.startswith("seen") else None
            entries = [e for e in read_index(args.data, split) if e["family"] == family][:args.per_family]
            for entry in entries:
                shape = load_shape(args.data, entry)
                images = {v: shape["sketch"][style][k] for k, v in enumerate(meta["sketch_views"])}
                sketch = read_sketch(images, {})
                truth = Maps(shape["depth"], shape["normal"], shape["mask"])
                rng = np.random.default_rng(0)
                true_pts, true_normals = metrics.sample_surface(shape["vertices"], shape["faces"],
                                                                metrics.SURFACE_SAMPLES, rng)
                for design in DESIGNS:
                    if design == "multiview":
                        maps = multiview_maps(multiview, sketch.images)
                        tolerance, votes = FUSION_DEPTH_TOLERANCE_PX, FUSION_PRUNE_VOTES
                    else:
                        maps = predictors[design].predict(sketch.images, sketch.silhouettes, 256)
                        tolerance, votes = predictors[design].depth_tolerance_px, predictors[design].prune_votes
                    depth, iou = map_scores(maps, truth)
                    try:
                        fused = fusion.fuse(maps, "medium", depth_tolerance_px=tolerance, prune_votes=votes)
                        v, f = fused.vertices, fused.faces
                        pts, normals = metrics.sample_surface(v, f, metrics.SURFACE_SAMPLES, rng)
                        mesh = (metrics.chamfer(pts, true_pts),
                                metrics.volumetric_iou((v, f), (shape["vertices"], shape["faces"]),
                                                       metrics.VOLUME_RESOLUTION),
                                metrics.normal_consistency(pts, normals, true_pts, true_normals))
                    except Exception as exc:  # noqa: BLE001 - a design that cannot fuse is scored as not built
                        print(f"  {entry['id']} {design}: {exc}", file=sys.stderr)
                        mesh = None
                    rows[design].append((depth, iou, mesh))
        for design in DESIGNS:
            r = rows[design]
            built = [m for _, _, m in r if m is not None]
            print(f"{group} | {design} | {np.mean([x[0] for x in r]):.4f} | {np.mean([x[1] for x in r]):.3f} | "
                  f"{np.mean([m[0] for m in built]) if built else float('nan'):.4f} | "
                  f"{np.mean([m[1] for m in built]) if built else float('nan'):.3f} | "
                  f"{np.mean([m[2] for m in built]) if built else float('nan'):.3f} | {len(built)}/{len(r)}")


if __name__ == "__main__":
    main()
