"""MkDocs hooks: the pages generated at build time, so that none of them is typed by hand.

- `reference/cli.md`: `hvm1 -h` and every command's `hvm1 COMMAND -h`, as the real parsers print them (the
  command names are read from `hvm1 -h`, so a new command appears without a change here).
- `reference/api/*.md`: a page per public module of `hvm1` and of its subpackages, rendered by mkdocstrings
  from the docstrings. A package's members are its `__all__`; a module without `__all__` shows the functions
  and classes it defines under public names. Each object is rendered once, on the first page that exports it
  (`hvm1` first, then the subpackages, then the modules, then the subpackages' modules); the other pages link
  to it. In the nav a subpackage's modules are listed under it.
- `design/performance.md`: the tables of the result files the benchmark scripts write (`benchmarks/results/`),
  with the machine, CPU flags, torch version, commit and date of each.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
API_NAV_ENTRY = "reference/api/index.md"  # the nav line the API pages are listed under
HELP_COLUMNS = "100"  # the width argparse wraps help to (it reads $COLUMNS)

# Hooks run inside mkdocs' process: the package is importable from the checkout without an install too.
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


# ---------------------------------------------------------------------------------------------------- CLI
def _help(argv: list[str]) -> str:
    """What `hvm1 ARGV` prints on stdout and exits with (`-h` exits 0 through SystemExit)."""
    from hvm1.cli import main

    out = io.StringIO()
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main(argv)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
    return out.getvalue()


def command_names(top_help: str) -> list[str]:
    """The commands `hvm1 -h` lists under its COMMAND argument, in its order."""
    lines = top_help.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "COMMAND")
    names = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        match = re.match(r"^ {4}(\S+)", line)
        if match and not line.startswith(" " * 5):
            names.append(match.group(1))
    if not names:
        raise RuntimeError(f"no commands found in `hvm1 -h`:\n{top_help}")
    return names


def cli_page() -> str:
    top = _help(["-h"])
    names = command_names(top)
    parts = [
        "# Command line reference",
        "",
        "Generated when the site is built, from the `hvm1` parsers themselves: each block is what "
        "`hvm1 COMMAND -h` prints. Every `--dashed-flag` also takes the published scripts' spelling "
        "(`--out_dir`, `--num_vids`).",
        "",
        "## hvm1",
        "",
        "```text",
        top.rstrip(),
        "```",
    ]
    for name in names:
        parts += ["", f"## hvm1 {name}", "", "```text", _help([name, "-h"]).rstrip(), "```"]
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------- API
def public_modules() -> list[str]:
    """`hvm1`, its subpackages, its modules, then the subpackages' modules (not the CLI's own modules: the CLI
    reference has those)."""
    import hvm1

    packages, modules, inner = [], [], []
    for info in pkgutil.iter_modules(hvm1.__path__):
        if info.name.startswith("_"):
            continue
        (packages if info.ispkg else modules).append(f"hvm1.{info.name}")
    for package in packages:
        if package == "hvm1.cli":
            continue
        parent = importlib.import_module(package)
        for info in pkgutil.iter_modules(parent.__path__):
            module = importlib.import_module(f"{package}.{info.name}")
            # A module whose name the package gave to one of its functions would have no identifier of its own
            # (mkdocstrings would find the function): no module is named after a function its package exports.
            if not info.name.startswith("_") and getattr(parent, info.name) is module:
                inner.append(module.__name__)
    return ["hvm1", *sorted(packages), *sorted(modules), *sorted(inner)]


def public_names(module: Any) -> list[str]:
    """`__all__`, else the functions and classes the module defines under public names, in source order."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    defined = [
        (name, value)
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
    ]
    return [name for name, value in sorted(defined, key=lambda item: _source_line(item[1]))]


def _source_line(value: Any) -> int:
    try:
        return inspect.getsourcelines(value)[1]
    except (OSError, TypeError):
        return 0


def api_pages() -> dict[str, str]:
    """Page path -> markdown, one page per public module."""
    rendered: dict[int, str] = {}  # id(object) -> the identifier it was rendered under
    pages: dict[str, str] = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        lines = [
            f"# {module_name}",
            "",
            f"::: {module_name}",
            "    options:",
            "      members: false",
            "      show_root_heading: false",
            "",
        ]
        for name in public_names(module):
            value = getattr(module, name)
            identifier = f"{module_name}.{name}"
            # Constants (tuples, dicts, numbers) are not unique objects: each page renders its own.
            shared = inspect.isfunction(value) or inspect.isclass(value)
            if shared and id(value) in rendered:
                lines += [f"- `{identifier}`: see [`{rendered[id(value)]}`][{rendered[id(value)]}]", ""]
                continue
            if shared:
                rendered[id(value)] = identifier
            lines += [f"::: {identifier}", "    options:", "      heading_level: 2", ""]
        pages[f"reference/api/{module_name}.md"] = "\n".join(lines)
    index = [
        "# Python API",
        "",
        "Generated when the site is built from the docstrings of the public API: what `hvm1.__all__` and "
        "each subpackage's `__all__` export, and the public functions and classes of the other modules "
        "(the subpackages' own modules included). "
        "An object is described once, on the first page that exports it; the other pages link there.",
        "",
    ]
    index += [
        f"- [`{path.removeprefix('reference/api/').removesuffix('.md')}`]({path.removeprefix('reference/api/')})"
        for path in pages
    ]
    pages[API_NAV_ENTRY] = "\n".join(index) + "\n"
    return pages


def _benchmark_results() -> Any:
    """benchmarks/results.py, the one module that writes and renders the result files."""
    spec = importlib.util.spec_from_file_location("benchmark_results", ROOT / "benchmarks" / "results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------- hooks
_generated: dict[str, str] = {}


def on_config(config: Any) -> Any:
    """Generate the pages, and list the API pages in the nav in place of its one API line."""
    _generated.clear()
    _generated["reference/cli.md"] = cli_page()
    api = api_pages()
    _generated.update(api)
    _generated["design/performance.md"] = _benchmark_results().performance_page(RESULTS)
    config["nav"] = _replace_nav(config["nav"], API_NAV_ENTRY, [{"Overview": API_NAV_ENTRY}, *_api_nav(api)])
    return config


def _api_nav(pages: dict[str, str]) -> list[dict[str, Any]]:
    """The API pages as nav entries: a module of a subpackage listed under its package, after the package."""
    modules = [path.removeprefix("reference/api/").removesuffix(".md") for path in pages if path != API_NAV_ENTRY]
    nav: dict[str, Any] = {}
    for module in modules:
        package = module.rpartition(".")[0]
        entry = {module: f"reference/api/{module}.md"}
        if package in nav and package != "hvm1":
            if not isinstance(nav[package], list):
                nav[package] = [{package: nav[package]}]
            nav[package].append(entry)
        else:
            nav[module] = entry[module]
    return [{name: value} for name, value in nav.items()]


def _replace_nav(nav: Any, target: str, replacement: list) -> Any:
    if isinstance(nav, list):
        return [_replace_nav(item, target, replacement) for item in nav]
    if isinstance(nav, dict):
        return {
            key: (replacement if value == target else _replace_nav(value, target, replacement))
            for key, value in nav.items()
        }
    return nav


def on_files(files: Files, config: Any) -> Files:
    for path, content in _generated.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files


if __name__ == "__main__":
    print(json.dumps(sorted(api_pages()), indent=1))
