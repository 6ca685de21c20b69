"""causalxai.code: the package files a workflow script runs (the workflow's code inputs)."""

from pathlib import Path

import pytest

from causalxai.code import module_files, package_root

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def fake_package(tmp_path):
    pkg = tmp_path / "src" / "causalxai"
    write(pkg / "__init__.py", "__version__ = '0'\n")
    write(pkg / "io.py", "from causalxai import __version__\nimport numpy\n")
    write(pkg / "a" / "__init__.py", "")
    write(pkg / "a" / "one.py", "from . import two\nfrom .three import f\n")
    write(pkg / "a" / "two.py", "from ..b.deep import g\n")
    write(pkg / "a" / "three.py", "def f(): pass\n")
    write(pkg / "b" / "__init__.py", "")
    write(pkg / "b" / "deep.py", "import os\n\ndef g(): pass\n")
    write(pkg / "b" / "unused.py", "")
    return tmp_path / "src"


def test_transitive_closure_by_hand(fake_package, tmp_path):
    script = write(tmp_path / "script.py",
                   "import sys\nfrom causalxai.a.one import x  # noqa\nfrom causalxai.io import y\n")
    got = {str(Path(p).relative_to(fake_package / "causalxai")) for p in module_files(script, fake_package)}
    # one -> two (from . import) and three (from .three), two -> b/deep (from ..b.deep),
    # io -> the package __init__ (from causalxai import __version__), and the parent
    # packages' __init__ that Python runs first; never b/unused.py
    assert got == {"a/one.py", "a/two.py", "a/three.py", "b/deep.py", "io.py", "__init__.py", "a/__init__.py",
                   "b/__init__.py"}


def test_parent_packages_run_first(fake_package, tmp_path):
    script = write(tmp_path / "s.py", "import causalxai.b.deep\n")
    got = {str(Path(p).relative_to(fake_package / "causalxai")) for p in module_files(script, fake_package)}
    assert got == {"b/deep.py", "b/__init__.py", "__init__.py"}


def test_files_inside_the_working_directory_are_relative(fake_package, tmp_path):
    script = write(tmp_path / "s.py", "import causalxai.b.deep\n")
    absolute = module_files(script, fake_package)
    inside = module_files(script, fake_package, relative_to=tmp_path)  # the project folder holds the package
    assert inside == sorted(str(Path(p).relative_to(tmp_path)) for p in absolute)
    assert all(not Path(p).is_absolute() and (tmp_path / p).is_file() for p in inside)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    assert module_files(script, fake_package, relative_to=elsewhere) == absolute  # the package lies outside it


def test_errors(fake_package, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such script"):
        module_files(tmp_path / "missing.py", fake_package)
    write(fake_package / "causalxai" / "a" / "three.py", "def f(:\n")
    script = write(tmp_path / "s.py", "from causalxai.a.one import x\n")
    with pytest.raises(ValueError, match="three.py"):
        module_files(script, fake_package)


def test_real_scripts():
    scripts = ROOT / "workflow" / "scripts"
    src = package_root() / "causalxai"
    meta = {str(Path(p).relative_to(src)) for p in module_files(scripts / "meta_model.py")}
    assert "study/meta_model.py" in meta and "io.py" in meta
    assert not any(p.startswith(("tracer/", "counterfactual/", "study/effects.py")) for p in meta)
    groups = {str(Path(p).relative_to(src)) for p in module_files(scripts / "causal_nodes.py")}
    assert "tracer/nodes.py" in groups and "tracer/cka.py" not in groups
    # every workflow script imports at least the module it is named after
    for script in scripts.glob("*.py"):
        assert module_files(script), script.name
