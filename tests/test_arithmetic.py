"""core.arithmetic: naming a CPU code path, and that torch then computes on it (subprocesses: torch reads the
settings on first use, so each case needs a fresh process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from factrace.core.arithmetic import parse

WORKFLOW = os.path.join(os.path.dirname(__file__), "..", "workflow")


def _run(code: str, env: dict[str, str] | None = None) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={**clean, "PYTHONPATH": WORKFLOW, **(env or {})})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def _native_capability() -> str:
    return _run("import torch; print(torch.backends.cpu.get_cpu_capability())")


def test_parse_names_the_variables_and_rejects_what_it_cannot_set():
    assert parse("") == {}
    assert parse("aten=avx2; mkl=AVX2") == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    for bad in ("avx2", "blas=AVX2", "aten=", "aten=avx2;mkl"):
        with pytest.raises(ValueError, match="NAME=VALUE"):
            parse(bad)


MATMUL = ("import hashlib, torch; g = torch.Generator().manual_seed(0); a = torch.randn(64, 1000, generator=g); "
          "b = torch.randn(1000, 64, generator=g); print(hashlib.sha256((a @ b).numpy().tobytes()).hexdigest())")


def test_apply_moves_torch_to_the_named_path_and_the_numbers_follow_it():
    if _native_capability() != "AVX512":  # asked when the test runs, not at collection (a torch import)
        pytest.skip("needs a CPU whose own path is not AVX2")
    apply = "from factrace.core.arithmetic import apply; print(apply({!r}))"
    assert _run(apply.format("aten=avx2")) == "{'arithmetic': 'aten=avx2', 'cpu_capability': 'AVX2'}"
    assert _run(apply.format("")) == "{'arithmetic': '', 'cpu_capability': 'AVX512'}"
    # MKL's branch cannot be read back: its effect is checked on a matmul, against the variable set from outside
    native = _run(MATMUL)
    pinned = _run(f"from factrace.core.arithmetic import apply; apply('mkl=AVX2'); {MATMUL}")
    assert pinned == _run(MATMUL, {"MKL_CBWR": "AVX2"})
    assert pinned != native


def test_apply_refuses_when_torch_already_chose_its_path():
    other = "default" if _native_capability() != "DEFAULT" else "avx2"
    code = ("import torch; torch.ones(64).sum(); from factrace.core.arithmetic import apply\n"
            f"try:\n    apply('aten={other}')\nexcept RuntimeError as e:\n    print('refused', 'before the process' in str(e))")
    assert _run(code) == "refused True"


def test_provenance_records_the_path_torch_computed_on():
    prov = "from factrace.core.provenance import Provenance; print(Provenance(stage='x').to_dict()['arithmetic'])"
    assert _run(prov) == "None"  # no torch in the process: no table of it came from torch's arithmetic
    native = _native_capability()
    assert _run(f"import torch; {prov}") == f"{{'machine': '{platform.machine()}', 'cpu_capability': '{native}', " \
                                              "'mkl_cbwr': 'AUTO'}"
    other = "default" if native != "DEFAULT" else "avx2"
    pinned = _run(f"from factrace.core.arithmetic import apply; apply('aten={other};mkl=AVX2'); {prov}")
    assert pinned == f"{{'machine': '{platform.machine()}', 'cpu_capability': '{other.upper()}', 'mkl_cbwr': 'AVX2'}}"
