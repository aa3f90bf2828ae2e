"""Benchmark the learned backend against the hull and the round prior, in the same run: quality and speed tables.

Usage (from the repository root, in the server environment):

    python benchmarks/bench_learned.py --data ~/.cache/sketch2mesh/procedural ~/.cache/sketch2mesh/real
        [--per-family 6] [--weights W] [--meshes ../shared/eval-meshes] [--fit 200]
        [--quality-only | --speed-only]

Quality: every shape is rebuilt from its front and side sketches by each backend (hull |
round | learned, the round one at its default roundness), at the default detail, and
scored against its ground-truth mesh (``evaluation.evaluate``): Chamfer, volumetric IoU,
normal consistency, F-score at 1%, and silhouette IoU of front and side against the
filled input silhouettes. Sets:

- held-out families of each dataset: the families (procedural kinds, real categories) the
  shipped weights were trained without (``--held-out``), ``--per-family`` shapes each,
  sketched clean, then sketchy;
- seen families, test split: shapes of the trained families that training never saw;
- ``--meshes``: real models (``../shared/eval-meshes``), sketched clean, then sketchy;
- ``--fit N``: Fit to strokes for N iterations after the learned backend, on the held-out
  shapes: Chamfer against the truth before and after, and the silhouette IoU.

Speed: warm server-side reconstruct of the bundled examples (median of ``--repeats``),
the predict stage alone, peak memory of a fresh process doing one reconstruct with each
backend, and the shipped weights' size.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_server.evaluation.evaluate import dataset_cases, evaluate_backends, mesh_cases  # noqa: E402
from model_server.reconstruct import pipeline  # noqa: E402
from model_server.reconstruct.backends.learned import SHIPPED_WEIGHTS  # noqa: E402
from model_server.sketch.png import load_png_sketch  # noqa: E402

BACKENDS = ("hull", "round", "learned")   # the first is the baseline the others are compared with
METRICS = (("chamfer", "Chamfer", "{:.4f}"), ("volume_iou", "vIoU", "{:.3f}"),
           ("normal_consistency", "NC", "{:.3f}"), ("f_score_1", "F@1%", "{:.3f}"),
           ("silhouette_iou", "sIoU", "{:.3f}"))   # sIoU: the lower of front's and side's


def quality_rows(cases: list, group: callable, weights: Path | None) -> dict[str, dict[str, list[dict]]]:
    """group -> backend -> score rows, every backend on every case (same sketches, same samples)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for index, (shape_id, load) in enumerate(cases):
        rows = evaluate_backends(shape_id, load, BACKENDS, "medium", "cpu", np.random.default_rng([0, index]),
                                 weights=weights)
        rows = {b: {**r, "silhouette_iou": min(r["silhouette_iou_front"], r["silhouette_iou_side"])} if r["ok"] else r
                for b, r in rows.items()}
        for backend, row in rows.items():
            out.setdefault(group(row), {}).setdefault(backend, []).append(row)
        print(f"  {shape_id}: " + ", ".join(f"{b} {rows[b].get('chamfer', float('nan')):.4f}" for b in BACKENDS),
              file=sys.stderr)
    return out


def table(title: str, groups: dict[str, dict[str, list[dict]]]) -> str:
    """Per group and overall: each metric for every backend side by side, each other
    backend's Chamfer ratio and vIoU gain over the hull, and how many shapes each built."""
    base, others = BACKENDS[0], BACKENDS[1:]
    initials = "/".join(b[0] for b in BACKENDS)
    heads = (["group", "n", f"built {initials}"] + [f"{h} {b[0]}" for _, h, _ in METRICS for b in BACKENDS]
             + [f"Ch {b[0]}/{base[0]}" for b in others] + [f"vIoU +{b[0]}" for b in others])
    lines = [f"## {title}", " | ".join(heads), " | ".join("---" for _ in heads)]
    everything = {b: [r for g in groups.values() for r in g.get(b, [])] for b in BACKENDS}
    for name, rows in sorted(groups.items()) + [("all", everything)]:
        built = [i for i in range(len(rows[base])) if all(rows[b][i]["ok"] for b in BACKENDS)]
        mean = {b: {k: float(np.mean([rows[b][i][k] for i in built])) if built else float("nan") for k, _, _ in METRICS}
                for b in BACKENDS}
        cells = [name, str(len(rows[base])), "/".join(str(sum(r["ok"] for r in rows[b])) for b in BACKENDS)]
        cells += [fmt.format(mean[b][k]) for k, _, fmt in METRICS for b in BACKENDS]
        cells += [f"{mean[b]['chamfer'] / mean[base]['chamfer']:.2f}" for b in others]
        cells += [f"{mean[b]['volume_iou'] - mean[base]['volume_iou']:+.3f}" for b in others]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def quality(args: argparse.Namespace) -> list[str]:
    tables = []
    held = [f.strip() for f in args.held_out.split(",") if f.strip()]
    by_family = lambda row: row.get("family", "?")  # noqa: E731
    for data in args.data or []:
        for style in ("clean", "sketchy"):
            cases = []
            for family in held:
                cases += dataset_cases(data, "all", style, {family})[:args.per_family]
            if cases:
                tables.append(table(f"{data.name}: held-out families (never trained on), {style} sketches",
                                    quality_rows(cases, by_family, args.weights)))
                print(tables[-1] + "\n", flush=True)
        seen = sorted({e for e in _families(data)} - set(held))
        cases = []
        for family in seen:
            cases += dataset_cases(data, "test", "clean", {family})[:max(1, args.per_family // 2)]
        tables.append(table(f"{data.name}: trained families, test split (shapes never trained on), clean sketches",
                            quality_rows(cases, by_family, args.weights)))
        print(tables[-1] + "\n", flush=True)
    if args.meshes and args.meshes.is_dir():
        for style in ("clean", "sketchy"):
            cases = mesh_cases(args.meshes, "y", style)
            tables.append(table(f"Real models ({args.meshes.name}), {style} sketches",
                                quality_rows(cases, lambda row: row["id"], args.weights)))
            print(tables[-1] + "\n", flush=True)
    return tables


def fitting(args: argparse.Namespace) -> list[str]:
    """Fit to strokes after the learned backend on the held-out shapes: does the outline
    get better without the shape getting worse in 3D?"""
    held = [f.strip() for f in args.held_out.split(",") if f.strip()]
    cases = []
    for data in args.data or []:
        for family in held:
            cases += dataset_cases(data, "all", "clean", {family})[:max(1, args.per_family // 2)]
    if args.meshes and args.meshes.is_dir():
        cases += mesh_cases(args.meshes, "y", "clean")
    lines = [f"## Fit to strokes, {args.fit} iterations after the learned backend (held-out shapes, clean)",
             "shape | Chamfer before | after | ratio | sIoU before | after", "--- | --- | --- | --- | --- | ---"]
    ratios, before_iou, after_iou = [], [], []
    for index, (shape_id, load) in enumerate(cases):
        row = evaluate_backends(shape_id, load, ("learned",), "medium", "cpu", np.random.default_rng([1, index]),
                                refine=args.fit, weights=args.weights)["learned"]
        if not row["ok"]:
            lines.append(f"{shape_id} | failed: {row.get('error', '?')} | | | |")
            continue
        before = row["before_refine"]
        sil = lambda r: min(r["silhouette_iou_front"], r["silhouette_iou_side"])  # noqa: E731
        ratios.append(row["chamfer"] / before["chamfer"])
        before_iou.append(sil(before))
        after_iou.append(sil(row))
        lines.append(f"{shape_id} ({row.get('family', '')}) | {before['chamfer']:.4f} | {row['chamfer']:.4f} | "
                     f"{ratios[-1]:.3f} | {before_iou[-1]:.3f} | {after_iou[-1]:.3f}")
    if ratios:
        lines.append(f"**mean** | | | **{np.mean(ratios):.3f}** (max {np.max(ratios):.3f}) | "
                     f"{np.mean(before_iou):.3f} | {np.mean(after_iou):.3f}")
    return ["\n".join(lines)]


def _families(data: Path) -> set[str]:
    from model_server.learning.data.format import read_index

    return {entry["family"] for entry in read_index(data)}


def speed(args: argparse.Namespace) -> list[str]:
    """Warm, server-side: each backend is loaded once, then every example is rebuilt
    ``repeats`` times, alternating backends so all see the same machine noise."""
    examples = sorted(p for p in (ROOT / "examples").iterdir() if (p / "front.png").is_file())
    inks = {p.name: {v: load_png_sketch(p / f"{v}.png") for v in ("front", "side")} for p in examples}
    for backend in BACKENDS:  # warm-up: imports, weights, caches
        pipeline.reconstruct_images(inks[examples[0].name], backend=backend, weights=args.weights)
    times = {b: {"total": [], "predict": []} for b in BACKENDS}
    for _ in range(args.repeats):
        for name in inks:
            for backend in BACKENDS:
                result = pipeline.reconstruct_images(inks[name], backend=backend, weights=args.weights)
                times[backend]["total"].append(result.timings["total"])
                times[backend]["predict"].append(result.timings["predict"])
    lines = ["## Speed (server side, warm, medium detail, CPU; median over examples x repeats)",
             "backend | predict median s | total median s | × hull | total max s", "--- | --- | --- | --- | ---"]
    hull_total = statistics.median(times["hull"]["total"])
    for b in BACKENDS:
        t = times[b]
        lines.append(f"{b} | {statistics.median(t['predict']):.3f} | {statistics.median(t['total']):.3f} | "
                     f"{statistics.median(t['total']) / hull_total:.2f} | {max(t['total']):.3f}")
    lines.append("")
    lines.append("backend | peak RSS of a fresh process, one reconstruct (MB)")
    lines.append("--- | ---")
    for b in BACKENDS:
        lines.append(f"{b} | {peak_memory(b, examples[0], args.weights):.0f}")
    weights = args.weights or SHIPPED_WEIGHTS
    lines.append(f"\nweights: {weights.relative_to(ROOT) if weights.is_relative_to(ROOT) else weights}, "
                 f"{weights.stat().st_size / 2**20:.2f} MiB")
    return ["\n".join(lines)]


def peak_memory(backend: str, example: Path, weights: Path | None) -> float:
    """Peak resident memory (MB) of a child process that reconstructs one example."""
    # VmHWM, not ru_maxrss: a child started by vfork reports its parent's peak in ru_maxrss.
    code = ("import sys; from model_server.reconstruct import pipeline; "
            "from model_server.sketch.png import load_png_sketch; from pathlib import Path; p = Path(sys.argv[1]); "
            "pipeline.reconstruct_images({v: load_png_sketch(p / f'{v}.png') for v in ('front', 'side')}, "
            "backend=sys.argv[2], weights=sys.argv[3] or None); "
            "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])")
    out = subprocess.run([sys.executable, "-c", code, str(example), backend, str(weights or "")],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+", help="dataset folders (from `dataset`; the shipped recipe's)")
    parser.add_argument("--meshes", type=Path, default=ROOT.parent / "shared" / "eval-meshes")
    parser.add_argument("--weights", type=Path, help="learned backend weights (default: the shipped ones)")
    parser.add_argument("--held-out", default="mug,car,characters,lights,bathroom",
                        help="families the weights were trained without")
    parser.add_argument("--fit", type=int, default=0, metavar="N", help="also fit N iterations on the held-out shapes")
    parser.add_argument("--per-family", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the tables' text here")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quality-only", action="store_true")
    which.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    out = []
    if not args.speed_only:
        out += quality(args)
        if args.fit:
            out += fitting(args)
    if not args.quality_only:
        out += speed(args)
    text = "\n\n".join(out)
    print("--- all tables ---\n" + text)
    print(f"\n({time.perf_counter() - started:.0f} s; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
    if args.json:
        args.json.write_text(json.dumps({"tables": out}, indent=1))


if __name__ == "__main__":
    main()
