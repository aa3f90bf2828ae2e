"""Real objects to learn from: Debian's ``sweethome3d-furniture`` package.

It holds 820 models (furniture, household objects, lights, vehicles, characters; CC0 and
CC-BY 3.0) as OBJ files inside five ``.sh3f`` zip archives. Each archive's
``PluginFurnitureCatalog.properties`` (Java properties, Latin-1) names every model with
``name#i``, ``category#i``, ``creator#i``, ``model#i`` (its path in the zip), an optional
``modelRotation#i`` (a row-major 3×3 that stands the model upright, Y up) and the
archive's ``license`` (``license#i`` overrides it).

:func:`fetch` downloads and unpacks the package into a cache folder the first time (no
root needed); :func:`catalog` lists an archive's models; :func:`load` reads one into the
canonical frame; :func:`attribution` writes the credits the CC-BY licence asks for.
About 75% of the models are not watertight: :func:`model_server.geometry.raycast.grid_occupancy`
is the inside test to use on them (ray votes alone streak outwards from open models).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_server.learning.data.meshes import MeshError, _merge_duplicates, normalize_vertices, up_rotation

PACKAGE = "sweethome3d-furniture"
FURNITURE = Path("usr/share/sweethome3d/furniture")
CATALOG = "PluginFurnitureCatalog.properties"


@dataclass(frozen=True)
class Model:
    """One model of an archive's catalog."""

    archive: Path
    index: int
    name: str
    category: str
    creator: str
    license: str
    path: str                       # the OBJ's path inside the archive
    rotation: tuple[float, ...] | None = None   # modelRotation, 9 numbers row-major

    @property
    def key(self) -> str:
        """A stable name for the model: archive and catalog index."""
        return f"{self.archive.stem}#{self.index}"


def family_of(model: Model) -> str:
    """The dataset family of a model: its category as a lower-case slug ("living-room")."""
    return re.sub(r"[^a-z0-9]+", "-", model.category.lower()).strip("-") or "uncategorised"


def read_properties(text: str) -> dict[str, str]:
    """A Java .properties text as a dict: comments, ``key=value``/``key: value``/``key value``,
    lines continued with a backslash, and ``\\uXXXX`` and backslash escapes."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.lstrip()
        if not line or line[0] in "#!":
            continue
        while _continues(line):
            line = line[:-1] + next(lines, "").lstrip()
        match = re.match(r"((?:\\.|[^=:\s\\])+)\s*(?:[=:]\s*|\s+|$)(.*)", line)
        if match:
            values[_unescape(match.group(1))] = _unescape(match.group(2))
    return values


def _continues(line: str) -> bool:
    """Whether a line ends in an odd number of backslashes (the next line continues it)."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _unescape(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    return re.sub(r"\\u([0-9a-fA-F]{4})|\\(.)",
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else escapes.get(m.group(2), m.group(2)), text)


def catalog(archive: Path) -> list[Model]:
    """Every model an ``.sh3f`` archive's catalog names, in catalog order."""
    with zipfile.ZipFile(archive) as zf:
        props = read_properties(zf.read(CATALOG).decode("latin-1"))
    indices = sorted(int(key.split("#", 1)[1]) for key in props if re.fullmatch(r"model#\d+", key))
    models = []
    for i in indices:
        rotation = props.get(f"modelRotation#{i}")
        numbers = tuple(float(x) for x in rotation.split()) if rotation else None
        if numbers is not None and len(numbers) != 9:
            raise ValueError(f"{archive.name}: modelRotation#{i} has {len(numbers)} numbers, not 9")
        models.append(Model(archive=archive, index=i, name=props.get(f"name#{i}", f"model {i}"),
                            category=props.get(f"category#{i}", ""), creator=props.get(f"creator#{i}", ""),
                            license=" ".join(props.get(f"license#{i}", props.get("license", "")).split()),
                            path=props[f"model#{i}"].lstrip("/"), rotation=numbers))
    return models


def load(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """A model in the canonical frame (Z up, centred, largest side TARGET_EXTENT):
    vertices (V, 3) float32, faces (F, 3) int32; its modelRotation applied first."""
    with zipfile.ZipFile(model.archive) as zf:
        vertices, faces = read_obj(zf.read(model.path).decode("latin-1"))
    if len(faces) == 0:
        raise MeshError(f"{model.key} ({model.name}): no faces")
    vertices, faces = _merge_duplicates(vertices, faces)
    if model.rotation is not None:
        vertices = vertices @ np.asarray(model.rotation, np.float64).reshape(3, 3).T
    try:
        canonical = normalize_vertices(vertices @ up_rotation("y").T)
    except MeshError as exc:
        raise MeshError(f"{model.key} ({model.name}): {exc}") from None
    return canonical.astype(np.float32), faces.astype(np.int32)


def read_obj(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of an OBJ text: every polygon
    fanned into triangles, ``v/vt/vn`` and negative (relative) indices understood, the
    rest (materials, groups, texture coordinates) ignored."""
    vertices: list[list[float]] = []
    triangles: list[tuple[int, int, int]] = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "v" and len(words) >= 4:
            vertices.append([float(w) for w in words[1:4]])
        elif words[0] == "f" and len(words) >= 4:
            corners = [int(w.split("/", 1)[0]) for w in words[1:]]
            corners = [c - 1 if c > 0 else len(vertices) + c for c in corners]
            triangles += [(corners[0], corners[k], corners[k + 1]) for k in range(1, len(corners) - 1)]
    v = np.asarray(vertices, np.float64).reshape(-1, 3)
    f = np.asarray(triangles, np.int64).reshape(-1, 3)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise MeshError("a face refers to a vertex the file does not have")
    return v, f


def fetch(cache: Path) -> list[Path]:
    """The package's ``.sh3f`` archives, downloaded (``apt-get download``, no root) and
    unpacked into ``cache`` the first time."""
    folder = cache / FURNITURE
    if not sorted(folder.glob("*.sh3f")):
        cache.mkdir(parents=True, exist_ok=True)
        debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
        try:
            if not debs:
                subprocess.run(["apt-get", "download", PACKAGE], cwd=cache, check=True)
                debs = sorted(cache.glob(f"{PACKAGE}_*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(cache)], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ValueError(f"could not fetch {PACKAGE} with apt-get download and dpkg-deb into {cache} ({exc}); "
                             f"on a system without apt, unpack the package's .sh3f files into {folder}") from None
    archives = sorted(folder.glob("*.sh3f"))
    if not archives:
        raise FileNotFoundError(f"{PACKAGE} unpacked into {cache} holds no .sh3f archives")
    return archives


def attribution(models: list[Model]) -> str:
    """The credits for ``models`` as Markdown: one row per model, with its creator and licence."""
    rows = [f"| {m.name} | {m.category} | {m.creator or 'unknown'} | {m.license} | {m.archive.name} |"
            for m in sorted(models, key=lambda m: (m.archive.name, m.index))]
    return "\n".join([f"# Models from Debian's {PACKAGE} package", "",
                      "| model | category | creator | licence | archive |", "|---|---|---|---|---|", *rows, ""])


def trained_models(data: Path, cache: Path, hold_out: set[str]) -> list[Model]:
    """The real objects a training run on dataset ``data`` learned from: its train and val
    shapes from this package whose family (category) is not in ``hold_out``."""
    from model_server.learning.data.format import read_index

    by_key = {m.key: m for archive in fetch(cache) for m in catalog(archive)}
    prefix = f"{PACKAGE}:"
    keys = [e["source"][len(prefix):] for e in read_index(data) if e["source"].startswith(prefix)
            and e["split"] in ("train", "val") and e["family"] not in hold_out]
    missing = [k for k in keys if k not in by_key]
    if missing:
        raise ValueError(f"{data} names models that {cache} does not hold: {', '.join(missing[:5])}")
    return [by_key[k] for k in dict.fromkeys(keys)]


def add_attribution_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m model_server attribution``."""
    parser.add_argument("--data", type=Path, required=True, help="the dataset of real objects training used")
    parser.add_argument("--sweethome", type=Path, required=True, metavar="CACHE", help="where the package is unpacked")
    parser.add_argument("--hold-out", default="", metavar="FAMILIES", help="the families training left out")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")


def run_attribution(args: argparse.Namespace) -> None:
    """Write the credits of the real objects a training run learned from."""
    from model_server.files import atomic_write

    models = trained_models(args.data, args.sweethome, {f.strip() for f in args.hold_out.split(",") if f.strip()})
    with atomic_write(args.out, "w", encoding="utf-8") as f:
        f.write(attribution(models))
    print(f"Wrote {args.out}: {len(models)} models")
