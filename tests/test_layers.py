"""Issue 23: the package's layers, as README draws them and pyproject.toml's import-linter contracts state them.

`lint-imports` checks the contracts on the installed package (no layer imports a layer above it; the offline speech
LM's build is imported by its commands alone); a copy of the package with one upward import added must break them.
No module is over 400 lines and no folder holds more than 10 modules side by side."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import factrace

ROOT = Path(__file__).resolve().parents[1]
PKG = Path(factrace.__file__).resolve().parent
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    res = _lint()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path):
    copy = tmp_path / "factrace"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    io = copy / "core" / "io.py"
    io.write_text(io.read_text() + "\n\ndef _upward():\n    from factrace.analysis import aie  # noqa: F401\n")
    res = _lint(pythonpath=tmp_path)
    assert res.returncode != 0
    assert "factrace.core is not allowed to import factrace.analysis" in res.stdout


def test_modules_are_small_and_folders_narrow():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
    wide = {}
    for d in [PKG, *(p for p in PKG.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        mods = [p for p in d.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        if len(mods) > 10:
            wide[str(d.relative_to(PKG.parent))] = len(mods)
    assert not wide, wide
