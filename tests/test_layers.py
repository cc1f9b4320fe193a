"""The import graph of ``cnnviz/`` goes one way: lowest layer first (docs/ARCHITECTURE.md).

Built from the AST, so imports inside functions count as much as those at the top of a file.
A unit (a top-level module or subpackage of ``cnnviz``) may import itself and units of strictly
lower layers, nothing else; and no two modules may import each other in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cnnviz"

# Lowest first. Each inner tuple is one layer; units of the same layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("paths", "device", "charts"),
    ("models", "data"),
    ("checkpoint", "inspect"),
    ("predict",),
    ("explain", "learn"),
    ("training",),
    ("runs",),
    ("jobs",),
    ("recipes",),
    ("experiments", "reports", "compare"),
    ("cli",),
    ("__main__", "__init__"),
    ("ui",),
)
LAYER_OF = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> set[str]:
    """Every ``cnnviz`` module that ``path`` imports, wherever the import statement sits."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from cnnviz import paths`` imports the module cnnviz.paths
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return {t for t in found if t == "cnnviz" or t.startswith("cnnviz.")}


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_unit_has_a_layer():
    units = {unit_of(m) for m in graph()}
    missing = sorted(units - set(LAYER_OF))
    assert not missing, f"place these in LAYERS and docs/ARCHITECTURE.md: {missing}"


def test_imports_only_go_down():
    wrong = []
    for module, targets in graph().items():
        source = unit_of(module)
        for target in sorted(targets):
            unit = unit_of(target)
            if unit == source or module == "cnnviz" and target == "cnnviz":
                continue
            if LAYER_OF.get(unit, -1) >= LAYER_OF.get(source, -1):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports up (or across) the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles():
    edges = {m: {t for t in ts if t != m} for m, ts in graph().items()}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if seen.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_map_names_each_layer(layer):
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for unit in LAYERS[layer]:
        if unit not in ("__init__", "__main__"):
            assert f"`{unit}`" in text, f"docs/ARCHITECTURE.md does not name layer unit {unit}"
