"""Architecture and dataset names live in their registries, nowhere else.

A string constant equal to a name from ``list_models()`` or ``list_datasets()`` in
``cnnviz/`` or ``pages/`` is a fact about that architecture or dataset copied out of its
spec: it goes stale when the spec changes, and a new architecture does not get the
behaviour. The specs themselves, the recipes and the experiments (which name the
configurations the course reports ran) may name them. Docstrings are prose and are
not scanned; comments are not string constants at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cnnviz.data import list_datasets
from cnnviz.models import list_models

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("cnnviz", "pages")
ALLOWED = (
    "cnnviz/models/",  # the architecture specs
    "cnnviz/data/",  # the dataset specs
    "cnnviz/recipes.py",  # named configurations
    "cnnviz/experiments.py",  # the course's experiments as data
    "cnnviz/experiments/",
)
# Strings that equal a registered name but mean something else.
HOMONYMS = {
    ("cnnviz/training/config.py", "alexnet"),  # AUGMENTS: the AlexNet paper's augmentation preset
}
# Names still written out, each to become a spec field or a registry lookup.
PENDING = {
    ("cnnviz/training/config.py", "alexnet_cifar"),  # TrainConfig's default arch: the default recipe
    ("cnnviz/training/config.py", "shapes"),  # TrainConfig's default dataset: the default recipe
    ("cnnviz/ui/logic.py", "shapes"),  # the Train form's default dataset: the default recipe
    ("cnnviz/ui/state.py", "folder"),  # restoring an upload path: DatasetSpec.needs_path
    ("pages/architectures.py", "alexnet"),  # the two side-by-side defaults: the registry's order
    ("pages/architectures.py", "resnet18"),
}


def _docstring_ids(tree: ast.AST) -> set[int]:
    """The ``id`` of every docstring constant (module, class and function docstrings)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def name_literals(path: Path, names: set[str]) -> list[tuple[int, str]]:
    """``(line, name)`` for every non-docstring string constant in ``path`` that is a registered name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstring_ids(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
            and id(node) not in docstrings]


def scanned_files() -> list[Path]:
    files = [p for folder in SCANNED for p in sorted((ROOT / folder).rglob("*.py"))]
    return [p for p in files if not any(p.relative_to(ROOT).as_posix().startswith(a) for a in ALLOWED)]


def test_the_scanner_sees_literals_but_not_docstrings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""About resnet18."""\n\ndef f(arch):\n    """For resnet18."""\n'
                      '    return arch == "resnet18"  # resnet18\n', encoding="utf-8")
    assert name_literals(sample, {"resnet18"}) == [(5, "resnet18")]


def test_no_architecture_or_dataset_name_outside_the_registries():
    names = set(list_models()) | set(list_datasets())
    found: dict[tuple[str, str], list[int]] = {}
    for path in scanned_files():
        for line, name in name_literals(path, names):
            found.setdefault((path.relative_to(ROOT).as_posix(), name), []).append(line)
    unexpected = sorted(f"{path}:{','.join(map(str, lines))}: {name!r}" for (path, name), lines in found.items()
                        if (path, name) not in PENDING | HOMONYMS)
    assert not unexpected, ("architecture or dataset names written out instead of read from a spec "
                            "(make them a spec field, or fill the widget from list_models()/list_datasets()):\n"
                            + "\n".join(unexpected))
    stale = sorted(key for key in PENDING | HOMONYMS if key not in found)
    assert not stale, f"fixed already: remove from PENDING: {stale}"


@pytest.mark.parametrize("folder", SCANNED)
def test_the_scan_covers_the_folders(folder):
    assert any(p.is_relative_to(ROOT / folder) for p in scanned_files())
