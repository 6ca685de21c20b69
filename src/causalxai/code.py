"""Which package source files a workflow script runs: the code half of "re-run what changed".

Snakemake re-runs a ``script:`` rule when the script file is newer than its outputs (the
``mtime`` rerun trigger; its ``code`` trigger covers only ``shell:`` and ``run:`` text). The
science of every step lives in :mod:`causalxai`, not in the script, so an edit to
``causalxai/tracer/cka.py`` would go unnoticed. :func:`module_files` closes the gap: it reads
a script's ``import`` statements (with :mod:`ast`, nothing is imported or executed), follows
every ``causalxai`` module it names, transitively, and returns their files. The workflow
lists them as each rule's ``code`` input, so editing a module re-runs exactly the rules whose
scripts use it (and their dependants) while the ``mtime`` trigger is on, the way Snakemake
treats the script itself.

A module counts when it is imported by name (``import causalxai.tracer.cka``, ``from
causalxai.tracer import cka``, ``from causalxai.tracer.cka import linear_cka``, relative
imports inside the package alike), together with the ``__init__.py`` of every package above
it, which Python runs first. The standard library's :mod:`modulefinder` would do the same walk but
imports nothing lazily, follows torch and xarray as well, and takes seconds per script;
this walk stays inside the package and takes milliseconds.
"""

from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["PACKAGE", "module_files", "package_root"]

PACKAGE = "causalxai"


def package_root() -> Path:
    """The folder that holds the ``causalxai`` package (``src/``)."""
    return Path(__file__).resolve().parent.parent


def _module_path(name: str, root: Path) -> Path | None:
    """The file of module ``name`` (dotted) under ``root``, or ``None`` when there is none."""
    parts = name.split(".")
    base = root.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path, module: str | None) -> frozenset[str]:
    """Dotted names of the ``causalxai`` modules ``path`` imports (candidates; some may be
    attributes rather than modules, which :func:`_module_path` filters out). Cached per file
    version (its modification time and size): the scripts' walks share most modules, and
    parsing every file again for each script was 1.7 s of a 4.5 s no-op run."""
    st = path.stat()
    return _parsed_imports(str(path), module, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=None)
def _parsed_imports(file: str, module: str | None, mtime_ns: int, size: int) -> frozenset[str]:
    path = Path(file)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise ValueError(f"{path}: cannot parse it to find the causalxai modules it uses: {err}") from err
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                if module is None:
                    continue
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                if keep < 1:
                    continue
                base = ".".join(parts[:keep] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names if a.name != "*")
    return frozenset(n for n in names if n == PACKAGE or n.startswith(PACKAGE + "."))


@lru_cache(maxsize=None)
def _closure(path: str, module: str | None, root: str) -> frozenset[str]:
    seen: dict[str, Path] = {}
    todo = [(Path(path), module)]
    while todo:
        file, mod = todo.pop()
        for name in _imports(file, mod):
            if name in seen:
                continue
            found = _module_path(name, Path(root))
            if found is None:
                continue
            seen[name] = found
            todo.append((found, name))
            parts = name.split(".")
            for depth in range(1, len(parts)):  # the parent packages' __init__, run on import
                parent = ".".join(parts[:depth])
                init = Path(root).joinpath(*parts[:depth], "__init__.py")
                if parent not in seen and init.is_file():
                    seen[parent] = init
                    todo.append((init, parent))
    return frozenset(str(p) for p in seen.values())


def module_files(
    script: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    relative_to: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Sorted paths of every ``causalxai`` source file ``script`` uses, transitively.

    Args:
        script: a Python file (a workflow script or a module of the package).
        root: the folder holding the ``causalxai`` package (default: this installation's).
        relative_to: a folder (the workflow's working directory): files inside it are given
            relative to it, so moving or copying a project folder that holds both the package
            and the results keeps the rules' ``code`` inputs, and Snakemake's ``input`` rerun
            trigger re-runs nothing; files outside it stay absolute, so moving a working
            directory away from an installed package does not change them either.

    Returns:
        Paths (absolute, or relative to ``relative_to``), sorted; a module the script imports
        that does not exist under ``root`` is skipped (the import itself would fail at run
        time with its own error).

    Raises:
        FileNotFoundError: ``script`` does not exist.
        ValueError: a file in the walk is not valid Python.
    """
    script = Path(script).resolve()
    if not script.is_file():
        raise FileNotFoundError(f"module_files: no such script {script}")
    base = Path(root).resolve() if root is not None else package_root()
    files = sorted(_closure(str(script), None, str(base)))
    if relative_to is None:
        return files
    folder = Path(relative_to).resolve()
    return sorted(str(Path(f).relative_to(folder)) if Path(f).is_relative_to(folder) else f for f in files)
