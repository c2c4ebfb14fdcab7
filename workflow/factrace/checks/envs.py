"""Resolve the pip section of every cluster environment with pip's resolver: ``make check-envs``.

Each conda env file (``envs/*.yaml``) and each pip step of the Apptainer definition (``envs/factrace.def``,
``%post``) is turned into a requirement set for one Python version, and pip resolves it without installing
(``pip install --dry-run --ignore-installed --report - --python-version X.Y --only-binary=:all:``), so that a
conflict (e.g. MeloTTS's ``transformers==4.27.4`` beside ``transformers>=4.45``) fails CI instead of a cluster
job. Conda's ``pytorch``/``torchaudio`` specs are resolved as their PyPI names (``torch``, ``torchaudio``).

Skipped, each with its reason (:data:`SKIP`): packages that are not on PyPI (installed from a git repository:
spiritlm, MeloTTS) and packages PyPI has as source only (pip resolves other Python versions from wheels only).
Everything else is resolved. pip's HTTP cache makes a second run fast.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

#: requirement name -> why pip cannot resolve it here
SKIP = {
    "fairscale": "source only on PyPI (no wheels): pip resolves another Python's set from wheels only",
    "encodec": "source only on PyPI (no wheels): pip resolves another Python's set from wheels only",
    "snakemake": "a dependency of it is source only, so a wheels-only resolution fails; `make venv` resolves "
                 "it with the project (pyproject.toml)",
    "snakemake-executor-plugin-slurm": "needs snakemake (see there)",
}
CONDA_TO_PIP = {"pytorch": "torch", "torchaudio": "torchaudio"}
CONDA_ONLY = {"python", "pip", "pytorch-cuda", "ffmpeg", "cudatoolkit"}


@dataclass
class EnvSpec:
    """One environment: its Python version and the pip requirements to resolve."""

    name: str
    python: str
    requirements: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (requirement, reason)


@dataclass
class Resolution:
    env: EnvSpec
    ok: bool
    installed: dict[str, str]  # name -> version pip chose
    error: str = ""


def _req_name(req: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _classify(reqs: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    keep, skipped = [], []
    for r in reqs:
        r = r.split(" #")[0].strip()
        if not r or r.startswith("#"):
            continue
        if r.startswith(("-e", "--editable", "/", ".")):
            skipped.append((r, "a local project, not a PyPI package"))
        elif "git+" in r or "://" in r:
            skipped.append((r, "not on PyPI: installed from its source repository"))
        elif _req_name(r) in SKIP:
            skipped.append((r, SKIP[_req_name(r)]))
        elif r.startswith("-"):
            continue  # a pip option (--no-cache-dir, --no-deps ...)
        else:
            keep.append(r)
    return keep, skipped


def conda_env_spec(path: str | Path) -> EnvSpec:
    """The pip requirements of a conda env file, with its conda pytorch/torchaudio specs as pip ones."""
    doc = yaml.safe_load(Path(path).read_text())
    python, reqs = None, []
    for dep in doc.get("dependencies", []):
        if isinstance(dep, dict):
            reqs += [str(x) for x in dep.get("pip", [])]
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", str(dep))
        name, spec = m.group(1), m.group(2).strip()
        if name == "python":
            python = spec.lstrip("=").split(",")[0].strip()
        elif name in CONDA_TO_PIP:
            reqs.append(CONDA_TO_PIP[name] + spec)
    if not python:
        raise ValueError(f"{path}: the env names no python version (add e.g. `python=3.11`)")
    keep, skipped = _classify(reqs)
    return EnvSpec(Path(path).stem, python, keep, skipped)


def def_pip_steps(path: str | Path) -> list[tuple[str, list[str]]]:
    """(pip executable, arguments) of every ``pip install`` command in the definition's ``%post`` section."""
    text = Path(path).read_text()
    m = re.search(r"^%post\s*$(.*?)(?=^%\w+|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    if not m:
        return []
    body = re.sub(r"\\\n", " ", m.group(1))
    steps = []
    for line in body.splitlines():
        for cmd in line.split("&&"):
            words = shlex.split(cmd, comments=True)
            for i, w in enumerate(words):
                if w.endswith("pip") and i + 1 < len(words) and words[i + 1] == "install":
                    steps.append((w, words[i + 2:]))
                    break
    return steps


def def_env_specs(path: str | Path) -> list[EnvSpec]:
    """One spec per pip executable of the definition (the image's main Python, /opt/melotts ...); their Python
    versions come from ``%labels`` (``PythonVersion`` for ``pip``, ``<Name>PythonVersion`` for
    ``/opt/<name>/bin/pip``), and envs the image builds from an env file (micromamba) are checked there."""
    text = Path(path).read_text()
    labels = dict(re.findall(r"^\s+(\w+)\s+(\S+)\s*$", re.search(r"^%labels\s*$(.*?)(?=^%\w+|\Z)", text,
                                                                   flags=re.MULTILINE | re.DOTALL).group(1), flags=re.MULTILINE))
    by_pip: dict[str, list[str]] = {}
    for pip, args in def_pip_steps(path):
        by_pip.setdefault(pip, []).extend(args)
    specs = []
    for pip, args in by_pip.items():
        m = re.match(r"^/opt/(\w+)/bin/pip$", pip)
        label = f"{m.group(1).capitalize()}PythonVersion" if m else "PythonVersion"
        if label not in labels:
            raise ValueError(f"{path}: no %labels {label} for the Python of {pip}")
        reqs = [a for a in args if not a.startswith("-")]
        keep, skipped = _classify(reqs)
        specs.append(EnvSpec(f"{Path(path).name}:{pip}", labels[label], keep, skipped))
    return specs


def resolve(env: EnvSpec, pip: str | None = None, timeout: int = 600) -> Resolution:
    """pip's resolver on ``env`` for its Python version (wheels only); nothing is installed."""
    cmd = [pip or sys.executable, "-m", "pip"] if pip is None else [pip]
    cmd += ["install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-", "--disable-pip-version-check",
            "--python-version", env.python, "--only-binary=:all:", *env.requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        return Resolution(env, False, {}, proc.stderr.strip()[-3000:])
    report = json.loads(proc.stdout)
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report.get("install", [])}
    return Resolution(env, True, chosen)


def all_specs(root: str | Path = ".") -> list[EnvSpec]:
    root = Path(root)
    specs = [conda_env_spec(p) for p in sorted((root / "envs").glob("*.yaml"))]
    for d in sorted((root / "envs").glob("*.def")):
        specs += def_env_specs(d)
    return specs


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m factrace.checks.envs", description=__doc__.split("\n")[0])
    p.add_argument("--root", default=".")
    p.add_argument("--jobs", type=int, default=4)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    specs = all_specs(a.root)
    with ThreadPoolExecutor(a.jobs) as ex:
        results = list(ex.map(resolve, specs))
    failed = 0
    for r in results:
        for req, why in r.env.skipped:
            log.info("%s: skipped %s (%s)", r.env.name, req, why)
        if r.ok:
            key = {k: r.installed[k] for k in ("torch", "transformers", "numpy") if k in r.installed}
            log.info("%s (Python %s): %d requirements resolve; %s", r.env.name, r.env.python,
                     len(r.env.requirements), key)
        else:
            failed += 1
            log.error("%s (Python %s): does NOT resolve:\n%s", r.env.name, r.env.python, r.error)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
