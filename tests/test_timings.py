"""`factrace timings` (issue 22): wall time per stage from Snakemake's benchmark files, printed by `make demo`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factrace.planning.timings import read_benchmark, rule_stages, stage_times

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def _bench(root: Path, rel: str, seconds: float, rss: str = "100.0") -> None:
    path = root / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t1\t1\t1\t1\t1\t0\t1\n")


def test_every_rule_has_a_stage_and_a_benchmark():
    stages = rule_stages()
    assert stages["trace"] == "trace" and stages["tts"] == "speech" and stages["build_speechlm"] == "speechlm"
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    for f in rules.glob("*.smk"):
        text = f.read_text()
        assert text.count("\n    benchmark:\n") == text.count("\n    log:\n"), f"{f.name}: a rule with a log and no benchmark"


def test_stage_times_sum_jobs_per_stage_exactly(tmp_path: Path):
    _bench(tmp_path, "trace/smollm2/t2t/0000.tsv", 12.5, "800.5")
    _bench(tmp_path, "trace/smollm2/t2t/0001.tsv", 7.25, "900.0")
    _bench(tmp_path, "tts/shard-0000.tsv", 3.0, "-")  # Snakemake writes "-" where it could not measure
    _bench(tmp_path, "shard/0000.tsv", 0.5)
    _bench(tmp_path, "compare.tsv", 2.0)  # a one-job rule's benchmark sits at the top
    rows = stage_times(tmp_path / "benchmarks", rule_stages())
    assert [r.stage for r in rows] == ["facts", "speech", "trace", "compare"]  # the workflow's order
    assert (rows[-1].jobs, rows[-1].longest_rule) == (1, "compare")
    trace = rows[2]
    assert (trace.jobs, trace.job_seconds, trace.longest_job_s, trace.longest_rule, trace.max_rss_mb) == (
        2, 19.8, 12.5, "trace", 900.0)  # 12.5 + 7.25 = 19.75, shown to 0.1 s
    assert rows[1].max_rss_mb == 0.0


def test_an_empty_benchmark_file_names_itself(tmp_path: Path):
    path = tmp_path / "x.tsv"
    path.write_text(HEADER)
    with pytest.raises(ValueError, match="x.tsv: empty benchmark file"):
        read_benchmark(path)


def test_timings_command_prints_a_table_then_json(tmp_path: Path):
    _bench(tmp_path, "filter/smollm2/t2t/shard-0000.tsv", 4.0)
    res = subprocess.run([sys.executable, "-m", "factrace", "timings", "--results", str(tmp_path), "--elapsed", "599",
                          "--setup", "62"], capture_output=True, text=True, check=True)
    lines = res.stdout.strip().splitlines()
    assert lines[1].split() == ["stage", "jobs", "job", "s", "share", "longest", "job", "peak", "MB"]
    assert "set-up (.venv) 62 s; in all 661 s = 11 min 1 s" in lines
    assert json.loads(lines[-1]) == {"elapsed_s": 599.0, "setup_s": 62.0, "stages": [{
        "stage": "filter", "jobs": 1, "job_seconds": 4.0, "longest_job_s": 4.0, "longest_rule": "filter",
        "max_rss_mb": 100.0}]}
    assert (tmp_path / "timings.json").read_text() == lines[-1] + "\n"  # what `make numbers` reads
    missing = subprocess.run([sys.executable, "-m", "factrace", "timings", "--results", str(tmp_path / "none")],
                             capture_output=True, text=True, check=False)
    assert missing.returncode != 0 and "no benchmark files" in missing.stderr
