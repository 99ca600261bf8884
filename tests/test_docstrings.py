"""The Args sections of the docstrings (Google style, rendered by the documentation site as parameter tables)
name parameters the functions have: a renamed or removed parameter must take its docstring entry along.
The site's strict build checks the functions it renders; this checks every function of hvm1, rendered or
not, in `make test`, without the docs extra."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import hvm1


def documented_functions():
    """(qualified name, function) of every function and method defined in hvm1's modules."""
    for info in pkgutil.walk_packages(hvm1.__path__, prefix="hvm1."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if inspect.isfunction(member):
                        yield f"{module.__name__}.{name}.{attribute}", member


def args_entries(docstring: str) -> list[str]:
    """The names an Args section lists (`name:` or `name (type):` one level below `Args:`)."""
    lines = inspect.cleandoc(docstring).splitlines()
    names: list[str] = []
    for index, line in enumerate(lines):
        if line.strip() != "Args:":
            continue
        indent = len(line) - len(line.lstrip())
        entry_indent = None
        for entry in lines[index + 1 :]:
            if not entry.strip():
                continue
            current = len(entry) - len(entry.lstrip())
            if current <= indent:
                break
            entry_indent = entry_indent or current
            match = re.match(r"\s*(\*{0,2}\w+)\s*(\([^)]*\))?:", entry)
            if current == entry_indent and match:
                names.append(match.group(1).lstrip("*"))
    return names


def test_args_sections_name_real_parameters():
    wrong = []
    checked = 0
    for name, function in documented_functions():
        entries = args_entries(function.__doc__ or "")
        if not entries:
            continue
        checked += 1
        parameters = set(inspect.signature(function).parameters)
        wrong += [f"{name}: {entry}" for entry in entries if entry not in parameters]
    assert checked > 100  # the public API is documented this way: the walk found it
    assert wrong == [], "Args entries naming no parameter:\n" + "\n".join(wrong)


def test_args_entries_are_read_as_the_site_reads_them():
    def example(path: str, *items: int, mode: str = "a", **options: str) -> None:
        """Summary.

        Args:
            path: a file,
                continued on a second line: not an entry.
            *items: numbers.
            mode (str): how.
            **options: more.

        Returns:
            nothing: not an argument.
        """

    assert args_entries(example.__doc__) == ["path", "items", "mode", "options"]
