"""Which CPU code path torch's float arithmetic takes: the machine's own (the default) or a named one.

torch picks its vectorised kernels (ATen's ``ATEN_CPU_CAPABILITY``) and its BLAS branch (MKL's conditional
numerical reproducibility, ``MKL_CBWR``) by the CPU it runs on, and the paths round differently in the last bits.
A model trained from scratch amplifies those bits: ``make sweep`` builds the offline speech LM under several paths
(the sweep's ``arithmetic`` column) to show how far a rebuild on another machine moves it. Both settings are read
by torch on first use, so :func:`apply` must run before a process computes anything with torch.
"""

from __future__ import annotations

import os
import platform
import sys

#: The names a spec may use, and the environment variable each sets.
ENV = {"aten": "ATEN_CPU_CAPABILITY", "mkl": "MKL_CBWR"}


def parse(spec: str) -> dict[str, str]:
    """``"aten=avx2;mkl=AVX2"`` -> ``{"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}``; ``""``: none (the
    machine's own path)."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(";")):
        if not part:
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not value or key not in ENV:
            raise ValueError(f"arithmetic {spec!r}: each part is NAME=VALUE with NAME one of {sorted(ENV)} "
                             f"(for example 'aten=avx2;mkl=AVX2'), got {part!r}")
        out[ENV[key]] = value
    return out


def apply(spec: str) -> dict[str, str]:
    """Set ``spec``'s environment variables in this process and return what torch uses: ``{"arithmetic": spec,
    "cpu_capability": ...}``. Raises when torch already chose another vectorised path (something computed
    before this call); MKL's branch cannot be read back, so it is only set."""
    env = parse(spec)
    os.environ.update(env)
    import torch  # noqa: F401 - imported here, after the variables are set: current() reads its path

    got = current()["cpu_capability"]
    want = env.get(ENV["aten"])
    if want is not None and got.lower() != want.lower():
        raise RuntimeError(f"arithmetic {spec!r}: torch already uses the {got} kernels (it computed before the "
                           f"setting was applied); set ATEN_CPU_CAPABILITY={want} before the process starts")
    return {"arithmetic": spec, "cpu_capability": got}


def current() -> dict[str, str] | None:
    """The code path this process computes on, for provenance (``Provenance.arithmetic``): the machine, torch's
    vectorised kernels and MKL's branch setting (``AUTO``: MKL's own choice); None when torch is not imported,
    since then no table of the process came from torch's arithmetic."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    return {"machine": platform.machine(), "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "mkl_cbwr": os.environ.get(ENV["mkl"], "AUTO")}
