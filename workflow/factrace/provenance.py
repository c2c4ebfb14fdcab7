"""Provenance carried by every table: what made it, from which inputs and settings."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

from . import __version__

KEY_LIBRARIES = ("torch", "transformers", "numpy", "pandas", "pyarrow", "snakemake", "faster-whisper")


def library_versions(names: tuple[str, ...] = KEY_LIBRARIES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
