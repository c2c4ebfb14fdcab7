"""Provenance carried by every table: what made it, from which inputs and settings.

Besides the stage's settings (``config_hash``, ``extra.params``), model and weights, every table records the code
that made it: the package version, the git commit of the package's checkout (``git_commit``, with ``git_dirty``
when tracked files differ from it; both None outside a git checkout) and the SHA-256 of the lock file
(``requirements/lock.txt`` at the checkout's root; None when absent), and the CPU code path torch computed on
(``arithmetic``: see :mod:`factrace.core.arithmetic`; a model trained from scratch moves with it). No timestamp or
host name: two runs of the same commit and settings on one machine write the same tables.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from factrace import __version__
from factrace.core.arithmetic import current as current_arithmetic

KEY_LIBRARIES = ("torch", "transformers", "numpy", "pandas", "pyarrow", "snakemake", "faster-whisper")


def library_versions(names: tuple[str, ...] = KEY_LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


#: the checkout the package runs from (workflow/factrace/ -> the repository root)
CHECKOUT = Path(__file__).resolve().parents[3]
LOCK_FILE = Path("requirements") / "lock.txt"


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


@lru_cache(maxsize=8)
def git_state(root: Path = CHECKOUT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout ``root`` belongs to: ``git rev-parse HEAD`` and whether tracked files
    differ from it (untracked files, such as results, do not count). (None, None) outside git, without git, or
    when git refuses (no error)."""
    if _git(root, "rev-parse", "--show-toplevel") is None:
        return None, None
    head = _git(root, "rev-parse", "HEAD")
    if head is None:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return head.strip(), None if status is None else bool(status.strip())


@lru_cache(maxsize=8)
def lock_sha256(root: Path = CHECKOUT) -> str | None:
    """SHA-256 of ``requirements/lock.txt`` at ``root`` (None when there is none)."""
    path = root / LOCK_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _git_commit() -> str | None:
    return git_state()[0]


def _git_dirty() -> bool | None:
    return git_state()[1]


def config_hash(params: Any) -> str:
    """A short stable hash of the settings that produced a table (JSON of sorted keys)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class Provenance:
    stage: str
    config_hash: str = ""
    seed: int | None = None
    model_id: str | None = None
    weights_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    package_version: str = __version__
    python: str = field(default_factory=platform.python_version)
    libraries: dict[str, str] = field(default_factory=library_versions)
    git_commit: str | None = field(default_factory=_git_commit)
    git_dirty: bool | None = field(default_factory=_git_dirty)
    lock_sha256: str | None = field(default_factory=lock_sha256)
    arithmetic: dict[str, str] | None = field(default_factory=current_arithmetic)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stage_provenance(stage: str, params: dict[str, Any], **kw: Any) -> Provenance:
    """The provenance of a table written by ``stage`` with the settings ``params`` (hashed and kept)."""
    return Provenance(stage=stage, config_hash=config_hash(params), extra={"params": params}, **kw)


IDENTITY_KEYS = ("model_id", "weights_sha256", "seed", "package_version")


def merge_provenance(provs: Sequence[Mapping[str, Any]], stage: str = "merge") -> dict[str, Any]:
    """The provenance of a table concatenated from ``provs``' tables (the layer windows of one trace shard).

    Model, weights, seed and package must agree (a merge of tables made by different models is refused). Settings
    that differ only in the layer window merge into the covering window, so the merged table's ``config_hash``
    equals that of one job tracing every layer; the inputs' own hashes are kept in ``extra.inputs``.
    """
    if not provs:
        return Provenance(stage=stage).to_dict()
    first = dict(provs[0])
    for key in IDENTITY_KEYS:
        values = {json.dumps(p.get(key), sort_keys=True) for p in provs}
        if len(values) > 1:
            raise ValueError(f"cannot merge tables with different {key}: {sorted(values)}")
    params = [dict((p.get("extra") or {}).get("params") or {}) for p in provs]
    windows = [p.pop("layers", None) for p in params]
    if any(p != params[0] for p in params):
        raise ValueError(f"cannot merge tables made with different settings: {params}")
    merged = dict(params[0])
    if all(w is not None for w in windows):
        merged["layers"] = [min(int(w[0]) for w in windows), max(int(w[1]) for w in windows)]
    first.pop("contract", None)
    first.update(
        stage=stage,
        config_hash=config_hash(merged) if merged else first.get("config_hash", ""),
        extra={
            "params": merged,
            "input_stage": provs[0].get("stage"),
            "inputs": [{"config_hash": p.get("config_hash"), "layers": w} for p, w in zip(provs, windows)],
        },
    )
    return first
