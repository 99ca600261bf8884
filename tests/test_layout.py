"""Rules of the package's shape that a reader relies on: shared names are public, model code is plain PyTorch."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def test_no_module_imports_another_modules_private_name():
    found = []
    for path in _python_files("src", "tests"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert len(_python_files("src")) > 50
    assert found == []


def test_model_code_knows_no_device_kernels_or_autocast():
    words = ("torch.ops.mkldnn", "mkldnn", "autocast(", "is_autocast", "get_autocast", ".cuda(", "is_available()")
    found = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in _python_files("src/hvm1/models")
        for word in words
        if word in path.read_text()
    ]
    assert len(_python_files("src/hvm1/models")) >= 6
    assert found == []


def test_no_module_is_named_after_something_its_package_exports():
    """`hvm1.eval.evaluate` as the function would hide `hvm1/eval/evaluate.py` from `import hvm1.eval.evaluate`
    readers and from the API reference (mkdocstrings finds the function): a module keeps a name of its own."""
    import importlib
    import pkgutil

    import hvm1

    hidden, seen = [], 0
    for package_info in pkgutil.iter_modules(hvm1.__path__):
        if not package_info.ispkg:
            continue
        package = importlib.import_module(f"hvm1.{package_info.name}")
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.startswith("_"):  # private, and `__main__` runs when imported
                continue
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            seen += 1
            if getattr(package, info.name) is not module:
                hidden.append(f"{module.__name__} (the package's {info.name} is {getattr(package, info.name)!r})")
    assert seen > 40
    assert hidden == []
