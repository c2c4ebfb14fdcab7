"""A finished Parquet table that is truncated or overwritten with garbage is detected, and rebuilt.

* reading it (factrace.core.io.read_table) raises a ContractError that names the file and says how to rebuild it;
* the next `snakemake` run removes it before planning (workflow/rules/common.smk) and reruns the job that makes
  it. The workflow run is tiny: only `shard` targets, so no model is needed.

The helpers `copy_workflow` and `snakemake` are shared with test_bad_input.py and test_lint.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from factrace.core import io
from factrace.core.contracts import ContractError
from factrace.core.provenance import Provenance

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "profiles", "resources", "envs", ".test")


def copy_workflow(dest: Path) -> Path:
    """The workflow (Snakefile, rules, package sources, configs, profiles, resources, envs) under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_PARTS:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    if not exe.exists():
        found = shutil.which("snakemake")
        if found is None:
            pytest.skip("snakemake is not installed")
        exe = Path(found)
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), *args], check=False, cwd=workdir, capture_output=True, text=True, env=env,
                          timeout=timeout)


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"\x00garbage, not a Parquet file\xff" * 40)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_read_table_names_the_damaged_file(tmp_path, how):
    path = tmp_path / "prompts" / "shard-0000.parquet"
    df = pd.DataFrame({"known_id": [1, 2], "subject": ["a", "b"], "attribute": ["c", "d"], "prompt": ["a x", "b y"],
                       "template": ["{} x", "{} y"], "relation_id": ["P1", "P1"], "shard": [0, 0]})
    io.write_table(df, path, "prompts", Provenance(stage="shard"))
    pd.testing.assert_frame_equal(io.read_table(path, "prompts"), df)
    if how == "empty":
        path.write_bytes(b"")
    else:
        _damage(path, how)
    with pytest.raises(ContractError) as err:
        io.read_table(path, "prompts")
    msg = str(err.value)
    assert str(path) in msg and "not a readable Parquet file" in msg and "rerun" in msg
    with pytest.raises(ContractError, match="shard-0000.parquet"):
        io.read_tables([path], "prompts")
