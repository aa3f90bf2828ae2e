"""The ``dataset`` command: make shapes with 14-view ground truth and synthetic sketches, in parallel.

Files follow :mod:`model_server.learning.data.format`. Shape i depends only on (seed, i): its
family follows from i (families are interleaved), its random numbers from
``SeedSequence(seed, spawn_key=(i,))``. So any subset regenerates identically, whatever the
number of workers or their order. Every file is written atomically, so an interrupted run
leaves only whole files; running again into the same folder skips the shapes already there
and rewrites a complete, sorted index at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from model_server.files import TEMPORARY_PATTERN
from model_server.geometry.maps import Maps
from model_server.geometry.raycast import render_maps
from model_server.geometry.views import INPUT_VIEWS, NUM_VIEWS, RESOLUTION, VIEWS
from model_server.learning.data import meshes
from model_server.learning.data import sketches
from model_server.learning.data import sweethome
from model_server.learning.data.format import (INDEX_FILE, MESH_FAMILY, META_FILE, PROCEDURAL_SOURCE, SHAPES_FOLDER,
                                               encode, index_entry, index_line, make_meta, read_index, read_meta,
                                               shape_id, write_index, write_meta, write_npz)

STYLES: tuple[str, ...] = sketches.STYLES
SKETCH_VIEWS: tuple[str, ...] = tuple(INPUT_VIEWS)        # front, side, top
MIN_RESOLUTION = 32
SHAPE_GRID = 96             # SDF samples per axis for the procedural shapes
MISREGISTRATION = 0.03      # the side view is drawn up to this much off the front's height and scale
FIELD_VARIANTS = 3          # readings of each shape's sketches stored for the learned backend's network
OCCUPANCY_RAYS = 7          # ray votes for the truth's thin sheets (real models are often open)
REAL_FAMILY = sweethome.PACKAGE

# Ground truth is rendered once for the 14 output views plus the top view (front and side
# are output views 0 and 1), and the sketches are drawn from these views' maps.
RENDER_VIEWS = VIEWS + (INPUT_VIEWS["top"],)
SKETCH_VIEW_INDEX = (0, 1, NUM_VIEWS)


class ShapeSkipped(Exception):
    """A shape that could not be made (a broken mesh file); the run goes on without it."""


# --- Seeds --------------------------------------------------------------------------------------

def shape_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for shape ``index``'s geometry and its sketches."""
    geometry, sketch = np.random.SeedSequence(seed, spawn_key=(index,)).spawn(2)
    return np.random.default_rng(geometry), np.random.default_rng(sketch)


# --- What each shape is -------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The settings of a run, from which every shape follows by its index."""

    count: int
    families: tuple[str, ...]       # sources in interleaving order; MESH_FAMILY stands for the meshes
    mesh_files: tuple[str, ...]
    up: str
    seed: int
    resolution: int
    models: tuple[sweethome.Model, ...] = ()   # real objects, when REAL_FAMILY is one of the families

    def family(self, index: int) -> str:
        return self.families[index % len(self.families)]

    def mesh_file(self, index: int) -> tuple[str, int]:
        """The mesh file of a mesh shape, and which pass over the files this is (0 = first)."""
        k = index // len(self.families)
        return self.mesh_files[k % len(self.mesh_files)], k // len(self.mesh_files)

    def model(self, index: int) -> sweethome.Model:
        """The real object of a REAL_FAMILY shape."""
        return self.models[(index // len(self.families)) % len(self.models)]

    def entry(self, index: int) -> dict:
        """Shape ``index``'s line in index.jsonl. A real object's family is its catalog
        category (``living-room``), so whole categories can be held out."""
        family = self.family(index)
        if family == REAL_FAMILY:
            model = self.model(index)
            return index_entry(shape_id(index), sweethome.family_of(model), f"{REAL_FAMILY}:{model.key}")
        source = self.mesh_file(index)[0] if family == MESH_FAMILY else PROCEDURAL_SOURCE
        return index_entry(shape_id(index), family, source)


def make_plan(count: int | None, families: Sequence[str] | None, mesh_folder: str | Path | None, up: str,
              seed: int, resolution: int, models: Sequence[sweethome.Model] = ()) -> Plan:
    """Check the run's settings and fix the shape sources (``models``: real objects from
    :mod:`.sweethome`). Raises ValueError for bad settings."""
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"--resolution must be at least {MIN_RESOLUTION}, not {resolution}")
    meshes.up_rotation(up)
    mesh_files: tuple[str, ...] = ()
    if mesh_folder is not None:
        mesh_files = tuple(str(p) for p in meshes.find_meshes(mesh_folder))
        if not mesh_files:
            raise ValueError(f"no mesh files ({', '.join(meshes.MESH_SUFFIXES)}) in {mesh_folder}")
    chosen = _families(families, bool(mesh_files), bool(models))
    if count is None:
        if chosen == (MESH_FAMILY,):
            count = len(mesh_files)
        elif chosen == (REAL_FAMILY,):
            count = len(models)
        else:
            raise ValueError("--count is required (it may be left out only with --meshes or --sweethome alone)")
    if count < 1:
        raise ValueError(f"--count must be at least 1, not {count}")
    return Plan(count, chosen, mesh_files, up, seed, resolution, tuple(models))


def _families(requested: Sequence[str] | None, with_meshes: bool, with_models: bool = False) -> tuple[str, ...]:
    """Procedural families to interleave (all by default, none with --meshes or --sweethome
    alone), plus 'mesh' and the real objects' REAL_FAMILY."""
    sources = ((MESH_FAMILY,) if with_meshes else ()) + ((REAL_FAMILY,) if with_models else ())
    if requested is None and sources:
        return sources
    from model_server.learning.data import shapes

    chosen = tuple(requested) if requested is not None else tuple(shapes.FAMILIES)
    unknown = [f for f in chosen if f not in shapes.FAMILIES]
    if unknown or not chosen:
        raise ValueError(f"unknown shape family {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(shapes.FAMILIES)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError("--families lists a family twice")
    return chosen + sources


# --- One shape: geometry, ground truth and sketches ---------------------------------------------

def shape_geometry(plan: Plan, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Canonical vertices and faces of shape ``index``; ShapeSkipped for an unusable mesh file."""
    family = plan.family(index)
    if family == REAL_FAMILY:
        model = plan.model(index)
        try:
            return sweethome.load(model)
        except (meshes.MeshError, ValueError, KeyError, OSError) as exc:
            raise ShapeSkipped(f"{model.key} ({model.name}): {exc}") from None
    if family != MESH_FAMILY:
        from model_server.learning.data import shapes

        return shapes.make_shape(family, rng, SHAPE_GRID)
    path, repeat = plan.mesh_file(index)
    try:
        vertices, faces = meshes.load_mesh(path, plan.up)
    except meshes.MeshError as exc:
        raise ShapeSkipped(str(exc)) from None
    if repeat:
        vertices = vary_mesh(vertices, rng)
    return vertices, faces


def vary_mesh(vertices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A variant of a mesh for later passes over a folder: stretched by up to 20% per axis
    and sometimes mirrored left-right, then normalised again (still facing front, still upright)."""
    stretch = rng.uniform(0.8, 1.2, 3) * np.array([rng.choice([-1.0, 1.0]), 1.0, 1.0])
    return meshes.normalize_vertices(vertices * stretch).astype(np.float32)


def make_sample(vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator,
                res: int = RESOLUTION) -> dict[str, np.ndarray]:
    """The stored arrays of one shape: ground-truth maps of the 14 views and sketches of the
    input views (rendered once, together), plus the mesh."""
    maps = render_maps(vertices, faces, res, RENDER_VIEWS)
    index = list(SKETCH_VIEW_INDEX)
    inks = sketches.draw_sketches(Maps(maps.depth[index], maps.normal[index], maps.mask[index]), rng, STYLES)
    arrays = encode(Maps(maps.depth[:NUM_VIEWS], maps.normal[:NUM_VIEWS], maps.mask[:NUM_VIEWS]), inks, vertices, faces)
    arrays.update(field_inputs(vertices, faces, inks, rng))
    return arrays


def sketch_readings(inks: np.ndarray, rng: np.random.Generator, count: int):
    """Up to ``count`` readings of a shape's sketches as a user's would be read: each a
    random style, the top drawn or not, and the side drawn slightly off the front's height
    and scale. Yields (style, Sketch); a reading whose views share no volume is skipped."""
    from model_server.errors import Refused
    from model_server.sketch.align import VerticalAlignment
    from model_server.sketch.read import read_sketch

    for _ in range(count):
        style = int(rng.integers(len(inks)))
        with_top = bool(rng.random() < 0.5)
        images = {name: inks[style][k] for k, name in enumerate(SKETCH_VIEWS) if name != "top" or with_top}
        misdrawn = VerticalAlignment(scale=1.0 + rng.uniform(-MISREGISTRATION, MISREGISTRATION),
                                     shift=rng.uniform(-MISREGISTRATION, MISREGISTRATION))
        images["side"] = misdrawn.image(images["side"], order=1)
        try:
            yield style, read_sketch(images, {})
        except Refused:
            continue


def field_inputs(vertices: np.ndarray, faces: np.ndarray, inks: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The learned backend's training arrays (:mod:`model_server.reconstruct.backends.learned_field`):
    for FIELD_VARIANTS readings of the sketches, field_input (K, C, n, n, n) and field_grids
    (K, 3, N, N, N) float16 and field_style (K,) int8; and the truth's inside test on the
    training grid, occupancy (N^3 bits, packed; :func:`~model_server.geometry.raycast.grid_occupancy`)."""
    from model_server.errors import Refused
    from model_server.geometry.raycast import grid_occupancy
    from model_server.reconstruct.backends import learned_field
    from model_server.reconstruct.backends.round import RoundField

    inputs, grids, styles = [], [], []
    for style, sketch in sketch_readings(inks, rng, FIELD_VARIANTS):
        try:
            field = RoundField(sketch.silhouettes)
        except Refused:
            continue
        inputs.append(learned_field.network_inputs(field, sketch.images).astype(np.float16))
        grids.append(learned_field.training_grids(field))
        styles.append(style)
    if not inputs:
        return {}
    inside = grid_occupancy(vertices, faces, learned_field.grid_axis(learned_field.FINE), OCCUPANCY_RAYS)
    return {"field_input": np.stack(inputs), "field_grids": np.stack(grids), "field_style": np.array(styles, np.int8),
            "occupancy": np.packbits(inside)}


# --- Resuming -----------------------------------------------------------------------------------

def plan_meta(plan: Plan, count: int) -> dict:
    """The meta.json of ``plan``'s dataset when it holds ``count`` shapes."""
    return make_meta(plan.resolution, STYLES, SKETCH_VIEWS, plan.seed, count)


def _check_resume(out: Path, plan: Plan) -> None:
    """Refuse to add to a folder that holds a different dataset."""
    if not (out / META_FILE).is_file():
        return
    old = read_meta(out)
    new = plan_meta(plan, plan.count)
    for key in ("resolution", "views", "styles", "sketch_views", "seed"):
        if old.get(key) != new[key]:
            raise ValueError(f"{out} holds a dataset with {key} {old.get(key)!r}, not {new[key]!r}; "
                             "choose another --out or the same settings")
    for entry in read_index(out):
        index = int(entry["id"])
        if index < plan.count and {k: entry[k] for k in ("family", "source")} != \
                {k: plan.entry(index)[k] for k in ("family", "source")}:
            raise ValueError(f"{out} holds shape {entry['id']} as {entry['family']} from {entry['source']}; "
                             "choose another --out or the same --families/--meshes")


# --- Generation ---------------------------------------------------------------------------------

_PLAN: Plan | None = None
_OUT: Path | None = None


def _init_worker(plan: Plan, out: Path) -> None:
    global _PLAN, _OUT
    _PLAN, _OUT = plan, out


def _work(index: int) -> tuple[int, str | None]:
    """Make and write shape ``index``: (index, None) or (index, why it was skipped)."""
    assert _PLAN is not None and _OUT is not None
    try:
        geometry_rng, sketch_rng = shape_rngs(_PLAN.seed, index)
        vertices, faces = shape_geometry(_PLAN, index, geometry_rng)
        arrays = make_sample(vertices, faces, sketch_rng, _PLAN.resolution)
        write_npz(_OUT / _PLAN.entry(index)["file"], arrays)
    except ShapeSkipped as exc:
        return index, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad shape must not end a long run
        return index, f"shape {shape_id(index)} failed: {type(exc).__name__}: {exc}"
    return index, None


def generate(out: str | Path, plan: Plan, workers: int | None = None, progress: bool = True) -> dict:
    """Make every shape of ``plan`` that ``out`` does not hold yet; returns a summary
    (made, skipped, seconds, shapes_per_s, count, bytes)."""
    from tqdm import tqdm

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    (out / SHAPES_FOLDER).mkdir(parents=True, exist_ok=True)
    _check_resume(out, plan)
    for folder in (out, out / SHAPES_FOLDER):       # temporary files left by a run cut off mid-write
        for stale in folder.glob(TEMPORARY_PATTERN):
            stale.unlink(missing_ok=True)
    write_meta(out, plan_meta(plan, plan.count))
    todo = [i for i in range(plan.count) if not (out / plan.entry(i)["file"]).is_file()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    started = time.perf_counter()
    skipped = []
    with open(out / INDEX_FILE, "a", encoding="utf-8") as index_file, \
            tqdm(total=len(todo), unit="shape", desc="dataset", disable=not progress, smoothing=0.05) as bar:
        for index, problem in _run(todo, plan, out, workers):
            if problem is None:
                index_file.write(index_line(plan.entry(index)))
                index_file.flush()
            else:
                skipped.append(index)
                category = meshes.MeshWarning if plan.family(index) == MESH_FAMILY else RuntimeWarning
                warnings.warn(problem, category, stacklevel=2)
            bar.update()
    seconds = time.perf_counter() - started
    count = _finish(out, plan)
    made = len(todo) - len(skipped)
    return {"made": made, "skipped": len(skipped), "seconds": seconds, "shapes_per_s": made / max(seconds, 1e-9),
            "count": count, "bytes": sum(f.stat().st_size for f in (out / SHAPES_FOLDER).glob("*.npz"))}


def _run(todo: list[int], plan: Plan, out: Path, workers: int) -> Iterable[tuple[int, str | None]]:
    """Results as shapes finish: in this process for one worker, else in a pool of fresh
    ('spawn') processes, which do not inherit the parent's open3d thread state."""
    if workers == 1:
        _init_worker(plan, out)
        yield from map(_work, todo)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(plan, out)) as pool:
        yield from pool.imap_unordered(_work, todo, chunksize=1)


def _finish(out: Path, plan: Plan) -> int:
    """Rewrite the index complete and sorted from the shape files present, and the meta's count."""
    entries = [plan.entry(i) for i in range(plan.count) if (out / plan.entry(i)["file"]).is_file()]
    write_index(out, entries)
    write_meta(out, plan_meta(plan, len(entries)))
    return len(entries)


# --- Command line: dataset ----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dataset`` command's options."""
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; an existing one is resumed)")
    parser.add_argument("--count", type=int, help="number of shapes (default with --meshes alone: one per mesh file)")
    parser.add_argument("--families", help="comma-separated procedural families (default: all; none with --meshes)")
    parser.add_argument("--meshes", type=Path, help="folder of OBJ/PLY/OFF/STL/GLB/glTF meshes to add (family 'mesh')")
    parser.add_argument("--sweethome", type=Path, metavar="CACHE",
                        help="add the real objects of Debian's sweethome3d-furniture package, one shape each, "
                             "their family their catalog category (downloaded and unpacked into CACHE the first time)")
    parser.add_argument("--up", choices=meshes.UP_AXES, default="z", help="up axis of the --meshes files (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores, %(default)s)")
    parser.add_argument("--resolution", type=int, default=RESOLUTION, help="map and sketch size (default %(default)s)")


def run(args: argparse.Namespace) -> None:
    """Generate (or resume) a dataset and report its throughput."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    models = [m for archive in sweethome.fetch(args.sweethome) for m in sweethome.catalog(archive)] \
        if args.sweethome else []
    plan = make_plan(args.count, families, args.meshes, args.up, args.seed, args.resolution, models)
    summary = generate(args.out, plan, args.workers, progress=True)
    per_shape = summary["bytes"] / max(summary["count"], 1)
    print(f"Made {summary['made']} shapes in {summary['seconds']:.1f} s ({summary['shapes_per_s']:.2f} shapes/s); "
          f"skipped {summary['skipped']}. {args.out} holds {summary['count']} shapes, "
          f"{summary['bytes'] / 2**20:.1f} MiB ({per_shape / 2**10:.0f} KiB per shape).")
