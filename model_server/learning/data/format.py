"""The dataset format: the one definition shared by the generator, training, previews and evaluation.

::

    DIR/meta.json        {"format": 1, "resolution": R, "views": 14, "styles": [...],
                          "sketch_views": ["front", "side", "top"], "seed": S, "count": N}
    DIR/index.jsonl      one line per shape: {"id", "family", "source", "split", "file"}
    DIR/shapes/<id>.npz  depth float16 (14, R, R), normal int8 (14, R, R, 3) (unit x 127),
                         mask uint8 (14, R, R), sketch uint8 (styles, 3, R, R) (255 = ink),
                         vertices float32 (V, 3), faces int32 (F, 3): the canonical mesh,
                         and the learned backend's inputs for K readings of the sketches
                         (reconstruct.backends.learned_field): field_input float16
                         (K, C, n, n, n), field_grids float16 (K, 3, N, N, N) and
                         field_style int8 (K,); occupancy uint8, the truth's inside test on
                         the N^3 training grid as packed bits

A shape's split follows from a hash of its id alone, so it never depends on which other
shapes exist. Every file is written atomically (see :mod:`model_server.files`), so a cut-off
writer leaves only whole files, and the index may end in one half-written line, which readers skip.

Readers use only :func:`read_meta`, :func:`read_index` and :func:`load_shape`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from model_server.files import atomic_write
from model_server.geometry.maps import Maps
from model_server.geometry.views import NUM_VIEWS

FORMAT = 1
META_FILE = "meta.json"
INDEX_FILE = "index.jsonl"
SHAPES_FOLDER = "shapes"
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_PERCENT = {"train": 90, "val": 5, "test": 5}
MESH_FAMILY = "mesh"        # the family of shapes made from mesh files; their source is the file's path
PROCEDURAL_SOURCE = "procedural"
NORMAL_SCALE = 127
INK_SCALE = 255
OPTIONAL = ("field_input", "field_grids", "field_style", "occupancy")   # absent where no reading of the sketches made a solid
COMPRESS_LEVEL = 1          # zlib level: 1 is 4x faster than numpy's default and only ~7% larger


# --- Ids, splits and index lines ----------------------------------------------------------------

def shape_id(index: int) -> str:
    """The id of shape ``index``: six digits or more."""
    return f"{index:06d}"


def split_of(shape: str) -> str:
    """'train', 'val' or 'test', from a hash of the id alone (90/5/5)."""
    bucket = int.from_bytes(hashlib.blake2b(shape.encode(), digest_size=8).digest(), "little") % 100
    if bucket < SPLIT_PERCENT["train"]:
        return "train"
    return "val" if bucket < SPLIT_PERCENT["train"] + SPLIT_PERCENT["val"] else "test"


def index_entry(shape: str, family: str, source: str) -> dict:
    """A shape's line in index.jsonl, as a dict: its split and file follow from its id."""
    return {"id": shape, "family": family, "source": source, "split": split_of(shape),
            "file": f"{SHAPES_FOLDER}/{shape}.npz"}


def index_line(entry: dict) -> str:
    """One line of index.jsonl, newline included."""
    return json.dumps(entry) + "\n"


def make_meta(resolution: int, styles: Sequence[str], sketch_views: Sequence[str], seed: int, count: int) -> dict:
    """The contents of meta.json, keys in their file order."""
    return {"format": FORMAT, "resolution": resolution, "views": NUM_VIEWS, "styles": list(styles),
            "sketch_views": list(sketch_views), "seed": seed, "count": count}


# --- Per-shape arrays ---------------------------------------------------------------------------

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
        **{name: arrays[name] for name in OPTIONAL if name in arrays},
    }


# --- Writing ------------------------------------------------------------------------------------

def write_npz(path: Path, arrays: dict[str, np.ndarray], level: int = COMPRESS_LEVEL) -> None:
    """An .npz (deflate at ``level``), written atomically: whole or absent."""
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def write_meta(folder: Path, meta: dict) -> None:
    """meta.json, written atomically."""
    with atomic_write(Path(folder) / META_FILE, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta, indent=1) + "\n")


def write_index(folder: Path, entries: Iterable[dict]) -> None:
    """index.jsonl with exactly ``entries``, written atomically."""
    with atomic_write(Path(folder) / INDEX_FILE, "w", encoding="utf-8") as f:
        f.write("".join(index_line(e) for e in entries))


# --- Reading ------------------------------------------------------------------------------------

def read_meta(folder: str | Path) -> dict:
    """The dataset's meta.json. Raises ValueError if the folder holds no dataset."""
    path = Path(folder) / META_FILE
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
    path = Path(folder) / INDEX_FILE
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
