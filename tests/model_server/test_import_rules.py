"""The server's import rules (ARCHITECTURE.md), checked on the source with ``ast``.

Layers, lowest first: the leaves (errors, device, files, interrupt), geometry, sketch, fit,
reconstruct, learning, evaluation, and the service edge (the ``service`` package, __main__). A module may
import its own layer and the layers below it, never above; the leaves import nothing of
the server. Only the service edge imports the wire protocol (``sketch2mesh_addon``).
One exception: the learned backend may import the network and the checkpoint loader.
Imports inside functions count as much as those at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "model_server"

LAYERS: dict[str, int] = {
    "model_server.errors": 0,
    "model_server.device": 0,
    "model_server.files": 0,
    "model_server.interrupt": 0,
    "model_server.geometry": 1,
    "model_server.sketch": 2,
    "model_server.fit": 3,
    "model_server.reconstruct": 4,
    "model_server.learning": 5,
    "model_server.evaluation": 6,
    "model_server.service": 7,
    "model_server.__main__": 7,
}
EDGE = 7
EXCEPTIONS = {
    ("model_server.reconstruct.backends.learned", "model_server.learning.networks"),
    ("model_server.reconstruct.backends.learned", "model_server.learning.checkpoint"),
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``module`` imports, absolute or relative, anywhere in its body."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def layer_of(module: str) -> int | None:
    best = None
    for prefix, rank in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, rank)
    return None if best is None else best[1]


def violations(root: Path = PACKAGE) -> list[str]:
    """One sentence per import that breaks a rule, for every module under ``root``."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        if module == root.name:
            continue  # the package's own __init__ imports nothing
        rank = layer_of(module)
        if rank is None:
            problems.append(f"{module} belongs to no layer; add its package to LAYERS and ARCHITECTURE.md")
            continue
        for target in sorted(imported_modules(path.read_text(), module, path.name == "__init__.py")):
            if target.split(".")[0] == "sketch2mesh_addon" and rank != EDGE:
                problems.append(f"{module} imports the wire protocol ({target}); only service and __main__ may")
            if target.split(".")[0] != root.name or target == root.name:
                continue
            target_rank = layer_of(target)
            if target_rank is None or any(module == source and (target == allowed or target.startswith(allowed + "."))
                                          for source, allowed in EXCEPTIONS):
                continue
            if rank == 0 or target_rank > rank:
                problems.append(f"{module} (layer {rank}) imports {target} (layer {target_rank})")
    return problems


def test_the_server_keeps_its_import_rules():
    assert violations() == []


@pytest.mark.parametrize("module, source, expected", [
    ("geometry/views.py", "from model_server.reconstruct import fusion\n", "imports model_server.reconstruct.fusion"),
    ("fit/optimiser.py", "def f():\n    from model_server.evaluation.metrics import iou\n", "imports model_server.evaluation"),
    ("reconstruct/pipeline.py", "from sketch2mesh_addon import protocol\n", "wire protocol"),
    ("reconstruct/fusion.py", "from ..learning import networks\n", "imports model_server.learning"),
    ("errors.py", "from model_server.geometry import views\n", "(layer 0)"),
    ("fit/optimiser.py", "from model_server.service import relay\n", "imports model_server.service.relay"),
    ("reconstruct/refine.py", "from model_server.service.replies import Busy\n", "(layer 4) imports model_server.service"),
    ("geometry/mesh.py", "from sketch2mesh_addon.protocol import mesh_defects\n", "wire protocol"),
    ("widgets.py", "import numpy\n", "belongs to no layer"),
])
def test_a_wrong_import_is_caught(tmp_path, module, source, expected):
    root = tmp_path / "model_server"
    path = root / module
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in [root, *path.parent.relative_to(root).parents, path.parent.relative_to(root)]:
        (root / folder / "__init__.py").touch()
    path.write_text(source)
    assert any(expected in problem for problem in violations(root)), violations(root)


def test_the_service_rooms_are_the_edge(tmp_path):
    root = tmp_path / "model_server"
    for module, source in {"service/relay.py": "from sketch2mesh_addon import protocol\n"
                                              "from model_server.service import replies\n",
                           "service/replies.py": "from model_server.reconstruct import pipeline\n"
                                                 "from model_server.evaluation import metrics\n"}.items():
        path = root / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (root / "__init__.py").touch()
    (root / "service" / "__init__.py").touch()
    assert violations(root) == []
    assert layer_of("model_server.service.relay") == EDGE


def test_the_learned_backend_may_use_the_network(tmp_path):
    root = tmp_path / "model_server"
    path = root / "reconstruct" / "backends" / "learned.py"
    path.parent.mkdir(parents=True)
    path.write_text("from model_server.learning.checkpoint import load_model\n"
                    "from model_server.learning.networks import FieldNet\n")
    assert violations(root) == []
