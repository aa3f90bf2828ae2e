"""Training data: generate, store and read shapes with 14-view ground truth and synthetic sketches.

The one definition of the dataset format, shared by the generator, training and evaluation::

    DIR/meta.json        {"format": 1, "resolution": R, "views": 14, "styles": [...],
                          "sketch_views": ["front", "side", "top"], "seed": S, "count": N}
    DIR/index.jsonl      one line per shape: {"id", "family", "source", "split", "file"}
    DIR/shapes/<id>.npz  depth float16 (14, R, R), normal int8 (14, R, R, 3) (unit x 127),
                         mask uint8 (14, R, R), sketch uint8 (styles, 3, R, R) (255 = ink),
                         vertices float32 (V, 3), faces int32 (F, 3): the canonical mesh

Shape i depends only on (seed, i): its family follows from i (families are interleaved),
its random numbers from ``SeedSequence(seed, spawn_key=(i,))``, and its split from a hash
of its id. So any subset regenerates identically, whatever the number of workers or their
order. Every file is written to a temporary name and renamed, so an interrupted run leaves
only whole files; running again into the same folder skips the shapes already there and
rewrites a complete, sorted index at the end.

Readers use only :func:`read_meta`, :func:`read_index` and :func:`load_shape`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from model_server.learning.data import meshes
from model_server.learning.data import sketches
from model_server.geometry.maps import Maps
from model_server.geometry.raycast import render_maps
from model_server.geometry.views import INPUT_VIEWS, NUM_VIEWS, RESOLUTION, VIEWS

FORMAT = 1
STYLES: tuple[str, ...] = sketches.STYLES
SKETCH_VIEWS: tuple[str, ...] = tuple(INPUT_VIEWS)        # front, side, top
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_PERCENT = {"train": 90, "val": 5, "test": 5}
MESH_FAMILY = "mesh"
NORMAL_SCALE = 127
INK_SCALE = 255
COMPRESS_LEVEL = 1          # zlib level: 1 is 4x faster than numpy's default and only ~7% larger
MIN_RESOLUTION = 32
SHAPE_GRID = 96             # SDF samples per axis for the procedural shapes

# Ground truth is rendered once for the 14 output views plus the top view (front and side
# are output views 0 and 1), and the sketches are drawn from these views' maps.
RENDER_VIEWS = VIEWS + (INPUT_VIEWS["top"],)
SKETCH_VIEW_INDEX = (0, 1, NUM_VIEWS)


class ShapeSkipped(Exception):
    """A shape that could not be made (a broken mesh file); the run goes on without it."""


# --- Ids, splits and seeds --------------------------------------------------------------------

def shape_id(index: int) -> str:
    """The id of shape ``index``: six digits or more."""
    return f"{index:06d}"


def split_of(shape: str) -> str:
    """'train', 'val' or 'test', from a hash of the id alone (90/5/5)."""
    bucket = int.from_bytes(hashlib.blake2b(shape.encode(), digest_size=8).digest(), "little") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "val" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["val"] else "test"


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

    def family(self, index: int) -> str:
        return self.families[index % len(self.families)]

    def mesh_file(self, index: int) -> tuple[str, int]:
        """The mesh file of a mesh shape, and which pass over the files this is (0 = first)."""
        k = index // len(self.families)
        return self.mesh_files[k % len(self.mesh_files)], k // len(self.mesh_files)

    def entry(self, index: int) -> dict:
        """Shape ``index``'s line in index.jsonl."""
        family = self.family(index)
        source = self.mesh_file(index)[0] if family == MESH_FAMILY else "procedural"
        sid = shape_id(index)
        return {"id": sid, "family": family, "source": source, "split": split_of(sid), "file": f"shapes/{sid}.npz"}


def make_plan(count: int | None, families: Sequence[str] | None, mesh_folder: str | Path | None, up: str,
              seed: int, resolution: int) -> Plan:
    """Check the run's settings and fix the shape sources. Raises ValueError for bad settings."""
    if resolution < MIN_RESOLUTION:
        raise ValueError(f"--resolution must be at least {MIN_RESOLUTION}, not {resolution}")
    meshes.up_rotation(up)
    mesh_files: tuple[str, ...] = ()
    if mesh_folder is not None:
        mesh_files = tuple(str(p) for p in meshes.find_meshes(mesh_folder))
        if not mesh_files:
            raise ValueError(f"no mesh files ({', '.join(meshes.MESH_SUFFIXES)}) in {mesh_folder}")
    chosen = _families(families, bool(mesh_files))
    if count is None:
        if chosen != (MESH_FAMILY,):
            raise ValueError("--count is required (it may be left out only with --meshes alone)")
        count = len(mesh_files)
    if count < 1:
        raise ValueError(f"--count must be at least 1, not {count}")
    return Plan(count, chosen, mesh_files, up, seed, resolution)


def _families(requested: Sequence[str] | None, with_meshes: bool) -> tuple[str, ...]:
    """Procedural families to interleave (all by default, none with --meshes alone), plus 'mesh'."""
    if requested is None and with_meshes:
        return (MESH_FAMILY,)
    from model_server.learning.data import shapes

    chosen = tuple(requested) if requested is not None else tuple(shapes.FAMILIES)
    unknown = [f for f in chosen if f not in shapes.FAMILIES]
    if unknown or not chosen:
        raise ValueError(f"unknown shape family {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(shapes.FAMILIES)}")
    if len(set(chosen)) != len(chosen):
        raise ValueError("--families lists a family twice")
    return chosen + ((MESH_FAMILY,) if with_meshes else ())


# --- One shape: geometry, ground truth, sketches, encoding -------------------------------------

def shape_geometry(plan: Plan, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Canonical vertices and faces of shape ``index``; ShapeSkipped for an unusable mesh file."""
    family = plan.family(index)
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
    return encode(Maps(maps.depth[:NUM_VIEWS], maps.normal[:NUM_VIEWS], maps.mask[:NUM_VIEWS]), inks, vertices, faces)


def encode(maps: Maps, inks: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> dict[str, np.ndarray]:
    """Maps, ink images (styles, views, R, R) and mesh -> the compact stored arrays
    (float32 arithmetic throughout: this runs once per shape on ~4 M values)."""
    foreground = maps.mask > 0.5
    weight = foreground.astype(np.float32)
    return {
        "depth": (maps.depth * weight).astype(np.float16),
        "normal": np.rint(maps.normal * (weight * np.float32(NORMAL_SCALE))[..., None]).astype(np.int8),
        "mask": foreground.astype(np.uint8),
        "sketch": np.rint(np.clip(inks, 0.0, 1.0) * np.float32(INK_SCALE)).astype(np.uint8),
        "vertices": np.asarray(vertices, np.float32),
        "faces": np.asarray(faces, np.int32),
    }


def decode(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stored arrays -> depth float32, unit normal float32, mask bool, sketch float32 in [0, 1], mesh."""
    mask = arrays["mask"].astype(bool)
    normal = arrays["normal"].astype(np.float32)
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    normal = np.where(mask[..., None], normal / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    return {
        "depth": arrays["depth"].astype(np.float32),
        "normal": normal,
        "mask": mask,
        "sketch": arrays["sketch"].astype(np.float32) / INK_SCALE,
        "vertices": arrays["vertices"].astype(np.float32),
        "faces": arrays["faces"].astype(np.int32),
    }


# --- Files --------------------------------------------------------------------------------------

def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_npz(path: Path, arrays: dict[str, np.ndarray], level: int = COMPRESS_LEVEL) -> None:
    """An .npz (deflate at ``level``) written to a temporary name and renamed: whole or absent."""
    tmp = _temporary(path)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """A text file written to a temporary name and renamed."""
    tmp = _temporary(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_meta(folder: str | Path) -> dict:
    """The dataset's meta.json. Raises ValueError if the folder holds no dataset."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a dataset (no meta.json)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder} has dataset format {meta.get('format')}; this version reads format {FORMAT}")
    return meta


def read_index(folder: str | Path, split: str | None = None) -> list[dict]:
    """The dataset's shapes, sorted by id, optionally only one split.

    A half-written last line (a run cut off mid-append) is ignored."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    read_meta(folder)
    path = Path(folder) / "index.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    entries = {}
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break
            raise ValueError(f"{path} line {number + 1} is not valid JSON") from None
        entries[entry["id"]] = entry
    return [entries[k] for k in sorted(entries) if split is None or entries[k]["split"] == split]


def load_shape(folder: str | Path, entry: dict) -> dict[str, np.ndarray]:
    """One shape's arrays, decoded (see :func:`decode`)."""
    with np.load(Path(folder) / entry["file"], allow_pickle=False) as data:
        return decode({name: data[name] for name in data.files})


def make_meta(plan: Plan, count: int) -> dict:
    return {"format": FORMAT, "resolution": plan.resolution, "views": NUM_VIEWS, "styles": list(STYLES),
            "sketch_views": list(SKETCH_VIEWS), "seed": plan.seed, "count": count}


def _check_resume(out: Path, plan: Plan) -> None:
    """Refuse to add to a folder that holds a different dataset."""
    if not (out / "meta.json").is_file():
        return
    old = read_meta(out)
    new = make_meta(plan, plan.count)
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
    (out / "shapes").mkdir(parents=True, exist_ok=True)
    _check_resume(out, plan)
    for stale in [*out.glob(".*.tmp"), *(out / "shapes").glob(".*.tmp")]:   # left by a run cut off mid-write
        stale.unlink(missing_ok=True)
    write_text(out / "meta.json", json.dumps(make_meta(plan, plan.count), indent=1) + "\n")
    todo = [i for i in range(plan.count) if not (out / plan.entry(i)["file"]).is_file()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    started = time.perf_counter()
    skipped = []
    with open(out / "index.jsonl", "a", encoding="utf-8") as index_file, \
            tqdm(total=len(todo), unit="shape", desc="dataset", disable=not progress, smoothing=0.05) as bar:
        for index, problem in _run(todo, plan, out, workers):
            if problem is None:
                index_file.write(json.dumps(plan.entry(index)) + "\n")
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
            "count": count, "bytes": sum(f.stat().st_size for f in (out / "shapes").glob("*.npz"))}


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
    write_text(out / "index.jsonl", "".join(json.dumps(e) + "\n" for e in entries))
    write_text(out / "meta.json", json.dumps(make_meta(plan, len(entries)), indent=1) + "\n")
    return len(entries)


# --- Command line: dataset ----------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dataset`` command's options."""
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created; an existing one is resumed)")
    parser.add_argument("--count", type=int, help="number of shapes (default with --meshes alone: one per mesh file)")
    parser.add_argument("--families", help="comma-separated procedural families (default: all; none with --meshes)")
    parser.add_argument("--meshes", type=Path, help="folder of OBJ/PLY/OFF/STL/GLB/glTF meshes to add (family 'mesh')")
    parser.add_argument("--up", choices=meshes.UP_AXES, default="z", help="up axis of the --meshes files (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes (default: all cores, %(default)s)")
    parser.add_argument("--resolution", type=int, default=RESOLUTION, help="map and sketch size (default %(default)s)")


def run(args: argparse.Namespace) -> None:
    """Generate (or resume) a dataset and report its throughput."""
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, not {args.workers}")
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    plan = make_plan(args.count, families, args.meshes, args.up, args.seed, args.resolution)
    summary = generate(args.out, plan, args.workers, progress=True)
    per_shape = summary["bytes"] / max(summary["count"], 1)
    print(f"Made {summary['made']} shapes in {summary['seconds']:.1f} s ({summary['shapes_per_s']:.2f} shapes/s); "
          f"skipped {summary['skipped']}. {args.out} holds {summary['count']} shapes, "
          f"{summary['bytes'] / 2**20:.1f} MiB ({per_shape / 2**10:.0f} KiB per shape).")


# --- Command line: dataset-preview --------------------------------------------------------------

PREVIEW_TILE = 128
PREVIEW_VIEWS = (0, 1, 5)            # front, side, and an icosahedron view from above the front
LABEL_WIDTH = 150
HEADER_HEIGHT = 18


def add_preview_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``dataset-preview`` command's options."""
    parser.add_argument("data", type=Path, help="dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="PNG contact sheet to write")
    parser.add_argument("--count", type=int, default=8, help="number of shapes (rows) (default %(default)s)")
    parser.add_argument("--split", choices=SPLITS, help="take the shapes from one split only")


def run_preview(args: argparse.Namespace) -> None:
    """Write the contact sheet PNG."""
    if args.count < 1:
        raise ValueError(f"--count must be at least 1, not {args.count}")
    if args.out.suffix.lower() != ".png":
        raise ValueError(f"--out must end in .png, not {args.out.name!r}")
    sheet = contact_sheet(args.data, args.count, args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"Wrote {args.out} ({sheet.size[0]}x{sheet.size[1]})")


def contact_sheet(folder: str | Path, count: int = 8, split: str | None = None):
    """A PIL image: per shape a row of its sketches (each style, front and side) and the
    depth, normal and mask maps of a few views, labelled with family and id."""
    from PIL import Image, ImageDraw

    entries = read_index(folder, split)[:count]
    if not entries:
        raise ValueError(f"{folder} holds no shapes{f' in split {split}' if split else ''}")
    columns = _preview_columns()
    tile = PREVIEW_TILE
    sheet = Image.new("RGB", (LABEL_WIDTH + len(columns) * tile, HEADER_HEIGHT + len(entries) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, _) in enumerate(columns):
        draw.text((LABEL_WIDTH + c * tile + 3, 3), title, fill="black")
    for r, entry in enumerate(entries):
        shape = load_shape(folder, entry)
        top = HEADER_HEIGHT + r * tile
        for c, (_, render) in enumerate(columns):
            image = Image.fromarray(render(shape)).resize((tile, tile), Image.Resampling.BILINEAR)
            sheet.paste(image, (LABEL_WIDTH + c * tile, top))
        label = f"{entry['family']}\n{entry['id']} ({entry['split']})"
        if entry["family"] == MESH_FAMILY:
            label += f"\n{Path(entry['source']).name[:20]}"
        draw.multiline_text((6, top + 6), label, fill="black")
        draw.line([(0, top), (sheet.size[0], top)], fill=(200, 200, 200))
    return sheet


def _preview_columns() -> list[tuple[str, object]]:
    """(title, shape -> uint8 image) for each column of the contact sheet."""
    columns: list[tuple[str, object]] = []
    for s, style in enumerate(STYLES):
        for v, view in enumerate(SKETCH_VIEWS[:2]):
            columns.append((f"{style} {view}", lambda shape, s=s, v=v: _ink_tile(shape["sketch"][s, v])))
    for index in PREVIEW_VIEWS:
        name = VIEWS[index].name
        columns.append((f"depth {name}", lambda shape, i=index: _depth_tile(shape["depth"][i], shape["mask"][i])))
        columns.append((f"normal {name}", lambda shape, i=index: _normal_tile(shape["normal"][i], shape["mask"][i])))
        columns.append((f"mask {name}", lambda shape, i=index: (shape["mask"][i] * 255).astype(np.uint8)))
    return columns


def _ink_tile(ink: np.ndarray) -> np.ndarray:
    return ((1.0 - ink) * 255).astype(np.uint8)


def _depth_tile(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Near = bright, far = dark, background black."""
    if not mask.any():
        return np.zeros(depth.shape, np.uint8)
    lo, hi = depth[mask].min(), depth[mask].max()
    shade = 1.0 - 0.8 * (depth - lo) / max(hi - lo, 1e-6)
    return (np.where(mask, shade, 0.0) * 255).astype(np.uint8)


def _normal_tile(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Camera-frame normals as RGB ((n + 1) / 2), background black."""
    return (np.where(mask[..., None], 0.5 * (normal + 1.0), 0.0) * 255).astype(np.uint8)
