"""`factrace plan` on the tiny config, resources derived from the model in one place, and a plan that is the same
before and after the facts download (issue 15, points 4, 6 and 9)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO, copy_workflow

SLURM_ENV = {"SLURM_ACCOUNT": "test", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}


def _env() -> dict[str, str]:
    exe = Path(sys.executable).with_name("snakemake")
    return {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}", **SLURM_ENV}


def _snakemake(wd: Path, *args: str) -> str:
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), *args], cwd=wd, capture_output=True, text=True, env=_env(), timeout=900,
                          check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def _jobs(text: str) -> Counter:
    from factrace.planning.plan import parse_dry_run

    return Counter((j.rule, tuple(sorted(j.wildcards.items()))) for j in parse_dry_run(text))


# ------------------------------------------------------------------------------------------------ resources
def _paper_config() -> dict:
    from factrace.core.config import load_config

    return load_config(REPO / "config" / "paper.yaml")


def test_memory_and_gpus_follow_the_model_size_dtype_and_device():
    from factrace.planning.resources import gpus, mem_mb, weight_bytes

    cfg = _paper_config()
    llama = cfg["models"]["llama2_7b"]
    assert 13.0e9 < weight_bytes(llama) < 14.0e9  # Llama-2-7B in bfloat16: 13.5 GB
    assert mem_mb(llama) >= 1.25 * weight_bytes(llama) / 1e6 and mem_mb(llama, attempt=2) == 2 * mem_mb(llama)
    assert gpus(llama) == 1
    cpu = {**llama, "device": "cpu"}
    assert gpus(cpu) == 0 and weight_bytes(cpu) == weight_bytes(llama)  # bf16 runs in bf16 on the CPU too
    fp16_cpu = {**cpu, "dtype": "float16"}
    assert weight_bytes(fp16_cpu) == 2 * weight_bytes({**llama, "dtype": "float16"})  # fp16: float32 on the CPU
    with pytest.raises(ValueError, match="float64"):
        weight_bytes({**llama, "dtype": "float64"})
    small = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())["models"]["smollm2"]
    assert mem_mb(small) <= 4000


def test_runtime_is_the_estimate_times_the_margin():
    from factrace.planning.resources import estimate, runtime_minutes

    cfg = _paper_config()
    est = estimate(cfg, "trace", "spiritlm_base", "s2t", 152)
    assert est.load_fraction < 0.01 and est.total_s > 3600
    assert runtime_minutes(cfg, est) == pytest.approx(1.3 * est.total_s / 60, abs=1)
    assert runtime_minutes(cfg, est, attempt=2) == 2 * runtime_minutes(cfg, est)
    t2t = estimate(cfg, "trace", "llama2_7b", "t2t", 145)  # the last, smallest shard
    assert t2t.load_fraction <= 0.10
    # the noise rule's forwards on the traced facts, every multiplier of tracing.noise_grid counted (at most)
    noise = estimate(cfg, "noise_scale", "llama2_7b", "t2t", 1209)
    assert noise.compute_s > 0 and runtime_minutes(cfg, noise) == pytest.approx(1.3 * noise.total_s / 60, abs=1)
    cfg["resources"]["trace"]["gpu_tflops"] = None
    assert estimate(cfg, "trace", "llama2_7b", "t2t", 10) is None
    assert runtime_minutes(cfg, None) == cfg["resources"]["trace"]["runtime"]


def test_the_noise_job_is_costed_by_the_noise_rules_forwards():
    """Issue 21 (5): per traced fact (kept, at most the cap of each shard) one clean run and `tracing.samples` noised
    runs for each multiplier the rule may try: tracing.noise_multiplier and the grid values above it."""
    from factrace.planning.estimate import KEPT_FRACTION
    from factrace.planning.resources import noise_rule_forwards

    cfg = _paper_config()  # shards of 152 facts, 10 samples, grid 3..20 (10 multipliers from 3)
    assert noise_rule_forwards(cfg, "llama2_7b", 1209) == pytest.approx(1209 * KEPT_FRACTION * (1 + 10 * 10))
    cfg["models"]["llama2_7b"]["max_facts_per_shard"] = 5  # 7 full shards and one of 145: 8 x 5 traced facts
    assert noise_rule_forwards(cfg, "llama2_7b", 1209) == pytest.approx(8 * 5 * 101)
    cfg["tracing"]["noise_multiplier"] = 10.0  # 10, 12, 15, 20
    assert noise_rule_forwards(cfg, "llama2_7b", 1209) == pytest.approx(8 * 5 * 41)


def test_a_model_cap_on_traced_facts_shortens_only_its_trace_jobs():
    from factrace.planning.resources import estimate, max_facts_per_shard, trace_facts

    cfg = _paper_config()
    cfg["tracing"]["max_facts_per_shard"] = 50
    cfg["models"]["llama2_7b"]["max_facts_per_shard"] = 5
    assert max_facts_per_shard(cfg, "llama2_7b") == 5 and max_facts_per_shard(cfg, "spiritlm_base") == 50
    assert trace_facts(cfg, "llama2_7b", 145) == 5 and trace_facts(cfg, "spiritlm_base", 145) == 50
    capped, other = estimate(cfg, "trace", "llama2_7b", "t2t", 145), estimate(cfg, "trace", "spiritlm_base", "t2t", 145)
    assert capped.compute_s < other.compute_s / 5
    cfg["models"]["llama2_7b"]["max_facts_per_shard"] = None  # its own null: every kept fact, not tracing's cap
    assert trace_facts(cfg, "llama2_7b", 145) > 50


def test_parse_dry_run_reads_rules_wildcards_and_resources():
    from factrace.planning.plan import parse_dry_run

    text = ("\n[Sat Nov 28 06:53:26 2026]\nrule trace:\n    input: a\n    output: b (update), c (update)\n"
            "    jobid: 15\n    wildcards: model=m, modality=s2t, shard=0001\n"
            "    resources: tmpdir=/tmp, mem_mb=20000, runtime=268, gpu=1, slurm_extra=--requeue\nShell command: x\n"
            "\n[Sat Nov 28 06:53:26 2026]\nlocalrule all:\n    input: b\n    jobid: 0\n    resources: tmpdir=/tmp\n"
            "\nrule tts:\n    wildcards: shard=0000\n    resources: mem_mb=8000, runtime=30, "
            "slurm_extra=--gpus-per-node=A40:1\n")
    jobs = parse_dry_run(text)
    assert [j.rule for j in jobs] == ["trace", "all", "tts"]
    assert jobs[0].wildcards == {"model": "m", "modality": "s2t", "shard": "0001"}
    assert (jobs[0].gpus, jobs[0].runtime_min, jobs[1].gpus, jobs[2].gpus) == (1, 268.0, 0, 1)


def test_the_plan_table_orders_tied_rules_by_name_whatever_the_dry_run_order():
    from factrace.planning.plan import PlannedJob, format_table, summarise

    jobs = [PlannedJob(r, {}, {}) for r in ("tts", "asr", "asr", "align", "tts", "shard")]
    config = {"facts": {"shard_size": 10, "limit": 0, "url": "x", "expected_ids": [0, 10]}}
    plans = [summarise(js, config) for js in (jobs, jobs[::-1])]
    assert list(plans[0]["jobs_per_rule"]) == ["asr", "tts", "align", "shard"]  # most jobs first, ties by name
    assert format_table(plans[0]) == format_table(plans[1])


# ------------------------------------------------------------------------------------------------ workflow
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("plan")
    copy_workflow(wd)
    return wd


@pytest.mark.slow
def test_factrace_plan_on_the_tiny_config(tiny_dir: Path):
    cfg = ".test/config/config.yaml"
    proc = subprocess.run([sys.executable, "-m", "factrace", "plan", "--configfile", cfg, "--profile",
                           "profiles/slurm"], cwd=tiny_dir, capture_output=True, text=True, env=_env(), timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plan = json.loads(proc.stdout.strip().splitlines()[-1])
    dry = _snakemake(tiny_dir, "-n", "--profile", "profiles/slurm", "--configfile", cfg)
    per_rule = Counter(rule for rule, _wc in _jobs(dry).elements())
    assert plan["jobs_per_rule"] == dict(per_rule) and plan["jobs"] == sum(per_rule.values())
    assert plan["jobs_per_rule"]["trace"] == 8  # 2 shards x (SmolLM2, backbone T->T; speech LM T->T and S->T)
    assert plan["model_loads"] == sum(per_rule[r] for r in ("filter", "noise_scale", "trace", "modality_gap"))
    assert plan["estimated_gpu_hours"] == 0 and plan["requested_over_estimated"] is None  # CPU config: no model
    assert "no GPU throughput" in proc.stdout
    # params per kind: the hidden trace does not depend on the window; each model has its own (issue 21: SmolLM2's
    # 30 layers keep tracing.window's 10, the 4-layer offline models get 1)
    assert '[["hidden", {"samples": 2, "seed": 1}], ["mlp", {"samples": 2, "seed": 1, "window": 10}]]' in dry
    assert '[["hidden", {"samples": 2, "seed": 1}], ["mlp", {"samples": 2, "seed": 1, "window": 1}]]' in dry


@pytest.mark.slow
def test_the_plan_is_the_same_before_and_after_the_facts_download(tmp_path: Path):
    """Issue 15.6: the shard digests went from a placeholder to the file's hash, so every job reran."""
    wd = tmp_path / "wf"
    wd.mkdir()
    copy_workflow(wd)
    facts = json.loads((REPO / ".test" / "data" / "facts.json").read_text())
    for i, f in enumerate(facts):
        f["known_id"] = i
    src = tmp_path / "published" / "known.json"
    src.parent.mkdir()
    src.write_text(json.dumps(facts))
    cfg = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    cfg["facts"].update(path="results/facts/known.json", url=src.as_uri(), expected_ids=[0, len(facts)],
                        shard_size=2)
    (wd / "config" / "downloaded.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = ("--configfile", "config/downloaded.yaml")
    before = _jobs(_snakemake(wd, "-n", *args))
    assert ("download_facts", ()) in before
    shards = ["results/prompts/shard-0000.parquet", "results/prompts/shard-0001.parquet"]
    _snakemake(wd, *shards, "--cores", "1", *args)  # the download (a file:// URL) and the shard tables
    assert (wd / "results" / "facts" / "known.json").is_file()
    after = _jobs(_snakemake(wd, "-n", *args))
    done = Counter({("download_facts", ()): 1, ("shard", (("shard", "0000"),)): 1, ("shard", (("shard", "0001"),)): 1})
    assert after == before - done
    assert "Nothing to be done" in _snakemake(wd, *shards, "-n", *args)


@pytest.mark.slow
def test_a_downloaded_file_with_other_ids_than_planned_is_an_error(tmp_path: Path):
    wd = tmp_path / "wf"
    wd.mkdir()
    copy_workflow(wd)
    cfg = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    (wd / "results" / "facts").mkdir(parents=True)
    (wd / "results" / "facts" / "known.json").write_text((REPO / ".test" / "data" / "facts.json").read_text())
    cfg["facts"].update(path="results/facts/known.json", url="https://example.invalid/known.json",
                        expected_ids=[0, 3])
    (wd / "config" / "downloaded.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), "-n", "--configfile", "config/downloaded.yaml"], cwd=wd, capture_output=True,
                          text=True, env=_env(), timeout=600, check=False)
    assert proc.returncode != 0 and "facts.expected_ids" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_bench_plan_on_a_small_synthetic_tree():
    """The planning benchmark (issue 15.10) runs, and a complete results tree plans no job."""
    proc = subprocess.run([sys.executable, "-m", "factrace", "bench-plan", "--facts", "30", "--shard-size", "10",
                           "--extra-tables", "20"], cwd=REPO, capture_output=True, text=True, env=_env(), timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["jobs_planned"] > 3 * 5 and res["jobs_left_on_complete_tree"] == 0
    assert res["tables"] >= 20 + 3 * 5  # the stale tables and the trace tables at least
    assert res["dry_run_complete_tree_s"] < 60
    assert "dry run, complete results tree" in proc.stdout
