"""The installed package: one name, nothing generic at top level, nothing written into it.

The fast test inspects the wheel; the slow one installs it into a fresh virtual
environment and runs the README's flow there (`make test-slow`).
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built from a copy of the sources: a checkout's build/ may hold stale files
    that setuptools would package (they once hid a subpackage missing from pyproject.toml)."""
    import shutil
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("firstspike", "sw", "hw", "sim"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True)
    (path,) = out.glob("firstspike-*.whl")
    return path


def test_wheel_installs_one_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"firstspike"}, top
    # every source file of the four folders, subpackages included (sw/neurons was once left out)
    sources = {f"firstspike/{p.relative_to(ROOT / folder).as_posix()}" if folder == "firstspike" else
               f"firstspike/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
               for folder in ("firstspike", "sw", "hw", "sim") for p in (ROOT / folder).rglob("*.py")}
    assert "firstspike/sw/neurons/ttfs.py" in sources
    missing = sorted(sources - set(names))
    assert not missing, f"not in the wheel: {missing}"
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "firstspike = firstspike.cli:main" in entry


def test_import_firstspike_is_cheap_and_public():
    code = "import sys, firstspike; print('torch' in sys.modules, callable(firstspike.convert))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split() == ["False", "True"]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_the_flow(wheel, tmp_path):
    """pip install the wheel into a new venv, then train -> convert -> sim from an empty folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True, capture_output=True)  # pinned first: never a CUDA build
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import firstspike, os; "
                                "print(os.path.dirname(firstspike.__file__))"],
                               capture_output=True, text=True, check=True, cwd=tmp_path).stdout.strip())
    assert site.is_relative_to(venv)
    before = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FIRSTSPIKE_CACHE_DIR"} | {"XDG_CACHE_HOME": str(tmp_path / "c")}
    fs = str(venv / "bin" / "firstspike")
    for cmd in (["train", "--epochs", "20", "--cat-epochs", "5"], ["convert"],
                ["sim", "--images", "30", "--pes", "4"]):
        r = subprocess.run([fs, *cmd], cwd=work, env=env, capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr[-3000:])
    assert "mismatches (images)      0" in r.stdout
    assert (tmp_path / "c" / "firstspike" / "verilator").is_dir()  # the user cache, not the package
    after = sorted(p for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before, "something was written into the installed package"
