"""What a model is to the workflow, shared by the loaders (``load.py``: ``hf``; ``spiritlm.py``): the config's
model entry (:class:`ModelSpec`), a loaded model (:class:`LoadedModel`), where and in which dtype it runs, its
checkpoint directory and the fingerprint of its weights.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from factrace.models.dtypes import runtime_dtype

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFoundError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    name: str
    loader: str
    path: str
    dtype: str  # models.<name>.dtype
    device: str  # models.<name>.device
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, name: str, cfg: dict[str, Any]) -> ModelSpec:
        known = {"loader", "path", "dtype", "device"}
        missing = sorted(known - set(cfg))
        if missing:
            raise ValueError(f"model {name!r}: its spec lacks {', '.join(missing)} (the rules pass the config entry "
                             "with the schema's defaults filled in)")
        return cls(
            name=name,
            loader=cfg["loader"],
            path=str(cfg["path"]),
            dtype=cfg["dtype"],
            device=cfg["device"],
            extra={k: v for k, v in cfg.items() if k not in known},
        )


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: Any
    device: torch.device
    weights_sha256: str


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """:func:`runtime_dtype` as a torch dtype (a warning when float16 falls back to float32 on the CPU)."""
    name = runtime_dtype(dtype, device.type)
    if name != dtype:
        log.warning("dtype %s requested on %s; using %s", dtype, device.type, name)
    return DTYPES[name]


def weights_fingerprint(path: str | Path, edge: int = 4 << 20) -> str:
    """sha256 over each weight file's name, size and its first and last ``edge`` bytes.

    Hashing 13 GB of Llama-2 in every job would cost more than some jobs; this fingerprint changes whenever a
    checkpoint is replaced and is cheap to compute.
    """
    h = hashlib.sha256()
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.suffix in {".safetensors", ".bin", ".pt", ".pth", ".gguf"})
    for p in files:
        size = p.stat().st_size
        h.update(f"{p.relative_to(root)}:{size}".encode())
        with open(p, "rb") as fh:
            h.update(fh.read(edge))
            if size > 2 * edge:
                fh.seek(size - edge)
                h.update(fh.read(edge))
    return h.hexdigest()


def check_path(spec: ModelSpec) -> Path:
    path = Path(spec.path)
    if not path.exists():
        raise ModelNotFoundError(
            f"model {spec.name!r}: checkpoint directory {path} does not exist; set `models.{spec.name}.path` in "
            "the config to a local checkpoint (nothing is downloaded at run time)"
        )
    return path
