"""The paper config plans its whole DAG on the Slurm profile (dry run, no Slurm, no weights), S->T included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_workflow import copy_workflow

pytestmark = pytest.mark.slow

CHECKPOINTS = (
    "checkpoints/Llama-2-7b-hf",
    "checkpoints/spiritlm/spiritlm_model/spirit-lm-base-7b",
    "checkpoints/spiritlm/spiritlm_model/spirit-lm-expressive-7b",
)


def dry_run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "SLURM_ACCOUNT": "test", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}
    return subprocess.run(
        [str(exe), "-n", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml", "--jobs", "10", *extra],
        cwd=workdir, capture_output=True, text=True, env=env, timeout=900, check=False,
    )


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("paper")
    copy_workflow(wd)
    import yaml
    from factrace.models.checkpoints import required_checkpoints

    for c in required_checkpoints(yaml.safe_load((wd / "config" / "paper.yaml").read_text())):
        if c.made_by_workflow:
            continue
        (wd / c.path).mkdir(parents=True, exist_ok=True)  # placeholders: a dry run never opens them
        for f in c.files:
            (wd / c.path / f).parent.mkdir(parents=True, exist_ok=True)
            (wd / c.path / f).touch()
    return wd


def test_paper_config_plans_the_full_dag(paper_dir: Path):
    proc = dry_run(paper_dir, "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout + proc.stderr
    for rule in ("download_facts", "shard", "tts_melotts", "tts", "asr", "align", "speech_tokens", "token_map", "filter",
                 "noise_scale", "trace", "merge_trace", "aie", "compare", "modality_gap"):
        assert f"\n{rule} " in out or out.startswith(f"{rule} "), f"rule {rule} not planned:\n{out[-3000:]}"
    assert "fit_units" not in out and "build_speechlm" not in out and "convert_model" not in out


def test_paper_config_plans_speech_to_text_for_both_spiritlm_variants(paper_dir: Path):
    proc = dry_run(paper_dir, "results/aie/spiritlm_base/s2t.parquet", "results/aie/spiritlm_expressive/s2t.parquet")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    for variant in ("spiritlm_base", "spiritlm_expressive"):
        assert f"results/trace/{variant}/s2t/mlp/shard-0120/layers-24-32.parquet" in out
        assert f"results/speech/token_map/{variant}/shard-0000.parquet" in out
    assert "--gpus" not in out  # the generic profile requests GPUs through the `gpu` resource


def test_missing_checkpoint_names_the_config_key(paper_dir: Path, tmp_path: Path):
    moved = paper_dir / CHECKPOINTS[0]
    moved.rename(moved.with_name("away"))
    try:
        proc = dry_run(paper_dir)
    finally:
        moved.with_name("away").rename(moved)
    assert proc.returncode != 0
    assert "models.llama2_7b.path" in proc.stderr + proc.stdout
