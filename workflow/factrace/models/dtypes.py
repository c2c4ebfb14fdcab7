"""The dtypes a model may be configured with (``models.<name>.dtype``) and the one it runs in on a device.

Torch-free, so that the resource functions of the Snakefile can size jobs without importing torch.
"""

from __future__ import annotations

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def runtime_dtype(dtype: str, device_type: str) -> str:
    """The dtype a model configured with ``dtype`` runs in on a ``device_type`` ("cpu", "cuda") device: as
    configured, except float16 on the CPU, which runs in float32 (CPUs have no fast float16 matmul; bfloat16 has
    one where the CPU has AVX512-BF16 or AMX, and traces within README's stated tolerance: "Tracing in bf16")."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPE_BYTES)}")
    return "float32" if device_type == "cpu" and dtype == "float16" else dtype


__all__ = ["DTYPE_BYTES", "runtime_dtype"]
