"""The paper config plans its whole DAG on the Slurm profile (dry run, no Slurm, no weights), S->T included, and
`factrace plan` shows a job shape and requested runtime that a cluster would accept."""

from __future__ import annotations

import json
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
SLURM_ENV = {"SLURM_ACCOUNT": "test", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}
N_SHARDS = 8  # Known-1000's ids [0, 1209) in shards of 152
MODEL_MODALITIES = 5  # Llama-2 T->T, two SpiritLM variants x (T->T, S->T)


def _env() -> dict[str, str]:
    exe = Path(sys.executable).with_name("snakemake")
    return {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}", **SLURM_ENV}


def dry_run(workdir: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    return subprocess.run(
        [str(exe), "-n", "--profile", "profiles/slurm", "--configfile", "config/paper.yaml", "--jobs", "10", *extra],
        cwd=workdir, capture_output=True, text=True, env=_env(), timeout=900, check=False,
    )


def place_checkpoint_placeholders(wd: Path) -> None:
    """Empty files where the paper config's checkpoints must be (a dry run or lint never opens them)."""
    from factrace.core.config import load_config
    from factrace.models.checkpoints import required_checkpoints

    for c in required_checkpoints(load_config(wd / "config" / "paper.yaml")):
        if c.made_by_workflow:
            continue
        (wd / c.path).mkdir(parents=True, exist_ok=True)
        for f in c.files:
            (wd / c.path / f).parent.mkdir(parents=True, exist_ok=True)
            (wd / c.path / f).touch()


@pytest.fixture(scope="module")
def paper_dir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("paper")
    copy_workflow(wd)
    place_checkpoint_placeholders(wd)
    return wd


@pytest.fixture(scope="module")
def paper_jobs(paper_dir: Path):
    from factrace.planning.plan import parse_dry_run

    proc = dry_run(paper_dir)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return parse_dry_run(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def paper_plan(paper_dir: Path) -> tuple[str, dict]:
    proc = subprocess.run([sys.executable, "-m", "factrace", "plan", "--configfile", "config/paper.yaml",
                           "--profile", "profiles/slurm"], cwd=paper_dir, capture_output=True, text=True,
                          env={k: v for k, v in _env().items() if k not in SLURM_ENV}, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout, json.loads(proc.stdout.strip().splitlines()[-1])


def test_paper_config_plans_the_full_dag(paper_jobs):
    rules = {j.rule for j in paper_jobs}
    for rule in ("download_facts", "shard", "tts_melotts", "tts", "asr", "align", "speech_tokens", "token_map", "filter",
                 "noise_scale", "trace", "aie", "compare", "modality_gap"):
        assert rule in rules, f"rule {rule} not planned: {sorted(rules)}"
    assert not rules & {"fit_units", "build_speechlm", "convert_model", "merge_trace"}


def test_paper_config_plans_speech_to_text_for_both_spiritlm_variants(paper_dir: Path):
    proc = dry_run(paper_dir, "results/aie/spiritlm_base/s2t.parquet", "results/aie/spiritlm_expressive/s2t.parquet")
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    for variant in ("spiritlm_base", "spiritlm_expressive"):
        assert f"results/trace/{variant}/s2t/mlp/shard-{N_SHARDS - 1:04d}.parquet" in out
        assert f"results/speech/token_map/{variant}/shard-0000.parquet" in out
    assert "--gpus" not in out  # the generic profile requests GPUs through the `gpu` resource


def test_every_rule_that_loads_a_7b_model_gets_a_gpu_and_memory_for_it(paper_jobs):
    """Issue 15.4: modality_gap asked for no GPU; filter (4000 MB) and noise_scale (8000 MB) could not hold 7B."""
    from factrace.planning.resources import MODEL_RULES

    weights_mb = 6.7e9 * 2 / 1e6  # 7B parameters in bfloat16
    seen = set()
    for j in paper_jobs:
        if j.rule in MODEL_RULES:
            seen.add(j.rule)
            assert int(j.resources["gpu"]) == 1, (j.rule, j.resources)
            assert int(j.resources["mem_mb"]) >= 1.25 * weights_mb, (j.rule, j.resources)
            assert int(j.resources["runtime"]) >= 5, (j.rule, j.resources)
    assert seen == set(MODEL_RULES)


def test_trace_jobs_load_the_model_once_per_model_modality_and_shard(paper_jobs):
    """Issue 15.9: 7,260 trace jobs (one per kind and layer window), each loading a 13.5 GB model."""
    trace = [j for j in paper_jobs if j.rule == "trace"]
    assert len(trace) == MODEL_MODALITIES * N_SHARDS
    assert len({(j.wildcards["model"], j.wildcards["modality"], j.wildcards["shard"]) for j in trace}) == len(trace)
    assert all("kind" not in j.wildcards and "lo" not in j.wildcards for j in trace)
    assert len(paper_jobs) < 2000


def test_factrace_plan_on_the_paper_config(paper_plan, paper_jobs):
    """`factrace plan`: requested / estimated GPU-hours <= 1.5, model loading <= 10% of every trace job."""
    text, plan = paper_plan
    for key in ("jobs", "jobs_per_rule", "gpu_jobs", "model_loads", "requested_gpu_hours", "estimated_gpu_hours"):
        assert key in plan
    assert plan["jobs"] == len(paper_jobs)
    assert plan["jobs_per_rule"]["trace"] == MODEL_MODALITIES * N_SHARDS
    assert plan["model_loads"] == sum(plan["jobs_per_rule"][r] for r in ("filter", "noise_scale", "trace",
                                                                         "modality_gap"))
    assert plan["gpu_jobs"] == plan["model_loads"]  # the profile puts exactly the model-loading rules on GPUs
    assert plan["unestimated_gpu_jobs"] == 0
    assert 1.0 <= plan["requested_gpu_hours"] / plan["estimated_gpu_hours"] <= 1.5
    assert plan["max_trace_job_load_fraction"] <= 0.10
    assert 40 < plan["estimated_gpu_hours"] < 80  # the cost model's ~58 A40-hours of tracing, plus loading
    assert "requested / estimated GPU-hours" in text
    assert any(line.split()[:2] == ["trace", str(MODEL_MODALITIES * N_SHARDS)] for line in text.splitlines()[1:-1])


def test_missing_checkpoint_names_the_config_key(paper_dir: Path, tmp_path: Path):
    moved = paper_dir / CHECKPOINTS[0]
    moved.rename(moved.with_name("away"))
    try:
        proc = dry_run(paper_dir)
    finally:
        moved.with_name("away").rename(moved)
    assert proc.returncode != 0
    assert "models.llama2_7b.path" in proc.stderr + proc.stdout
