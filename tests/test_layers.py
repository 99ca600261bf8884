"""The package's layers: data flows one way, so `eval/` and `viz/` import nothing from `train/`, and `data/`
nothing from the packages above it (checked on the source, so no lazy import escapes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hvm1

PACKAGE = Path(hvm1.__file__).parent
ABOVE_DATA = ("hvm1.train", "hvm1.eval", "hvm1.viz", "hvm1.cli", "hvm1.zoo", "hvm1.checkpoint", "hvm1.segment")


def _imports(module_file: Path) -> set[str]:
    """Every module the file imports, absolute, including imports inside functions."""
    package = "hvm1." + ".".join(module_file.relative_to(PACKAGE).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(module_file.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rstrip(".").split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("eval", ("hvm1.train",)),
        ("viz", ("hvm1.train",)),
        ("data", ABOVE_DATA),
    ],
)
def test_a_layer_imports_nothing_from_the_layers_above(package, forbidden):
    offending = {
        str(file.relative_to(PACKAGE)): sorted(name for name in _imports(file) if name.startswith(forbidden))
        for file in sorted((PACKAGE / package).rglob("*.py"))
    }
    assert {file: names for file, names in offending.items() if names} == {}


def test_the_check_sees_relative_and_lazy_imports():
    """The checker itself: a relative import inside a function is resolved to its absolute name."""
    file = PACKAGE / "eval" / "evaluation.py"
    assert "hvm1.eval.predictions.Predictions" in _imports(file)
    assert "hvm1.data" in _imports(file)
