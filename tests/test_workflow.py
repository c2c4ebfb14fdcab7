"""End-to-end: the workflow on a tiny config in a temporary directory, with the real offline model.

The session's one run of the tiny config (tests/tiny_run.py: 3 facts and 2 bad rows in 2 shards, speech
included); the tests read its outputs and use dry runs to show what an edit would rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_run import TinyRun

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

FACTS = json.loads((REPO / ".test" / "data" / "facts.json").read_text())


def copy_workflow(dest: Path) -> None:
    for name in ("Snakefile", "workflow", "config", "profiles", "resources", "envs", ".test"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("snakemake")
    env = {**os.environ, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=1500,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def tiny_config(workdir: Path) -> Path:
    """The CI's tiny config (.test/config/config.yaml), reading the facts file that the tests edit."""
    cfg = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    cfg["facts"]["path"] = "facts.json"
    path = workdir / "config" / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def workdir(tiny_run: TinyRun) -> Path:
    """The session's local run of the tiny config (tests/tiny_run.py; the drills run on it first, and leave it as
    it was)."""
    return tiny_run.wd


@pytest.fixture(scope="module")
def res(tiny_run: TinyRun) -> Path:
    return tiny_run.res


def test_every_job_of_the_run_has_a_benchmark_and_timings_reads_them(res: Path):
    """`make demo` ends with `factrace timings` (issue 22): each rule writes a benchmark file beside its log."""
    from factrace.planning.timings import rule_stages, stage_times

    # per rule (a drill's killed job leaves a log and no benchmark; its rerun writes one)
    logs = {p.relative_to(res / "logs").parts[0].removesuffix(".log") for p in (res / "logs").rglob("*.log")}
    benches = {p.relative_to(res / "benchmarks").parts[0].removesuffix(".tsv")
               for p in (res / "benchmarks").rglob("*.tsv")}
    assert logs and logs <= benches, sorted(logs - benches)
    stages = {r.stage for r in stage_times(res / "benchmarks", rule_stages())}
    assert {"facts", "speech", "filter", "trace", "aggregate", "compare"} <= stages


def test_run_writes_tables_and_figures(res: Path):
    assert sorted(p.name for p in (res / "prompts").glob("shard-*.parquet")) == ["shard-0000.parquet",
                                                                                "shard-0001.parquet"]
    filt = pd.concat(pd.read_parquet(p) for p in (res / "filter/smollm2/t2t").glob("*.parquet"))
    assert filt["kept"].sum() >= 2, filt
    trace = pd.read_parquet(res / "trace/smollm2/t2t/hidden/shard-0000.parquet")
    assert set(trace["layer"]) == set(range(30))
    assert trace["known_id"].nunique() == int(filt[filt.known_id < 4]["kept"].sum())
    aie = pd.read_parquet(res / "aie/smollm2/t2t.parquet")
    assert {"hidden", "mlp"} <= set(aie["kind"]) and (aie["n"] > 0).all()
    assert (res / "figures/aie_smollm2_t2t.png").stat().st_size > 10_000
    assert (res / "figures/aie_smollm2_t2t.pdf").exists()
    assert (res / "figures/figure2.png").stat().st_size > 10_000
    assert (res / "compare/category_peaks.csv").exists()
    assert (res / "compare/category_ratios.csv").exists()
    assert list((res / "figures/prompts").glob("*.png"))
    qc = pd.read_csv(res / "qc/qc.tsv", sep="\t")
    assert qc.loc[qc.stage == "facts", "n_facts"].item() == 3


def test_speech_outputs(res: Path):
    audio = pd.read_parquet(res / "speech/audio/shard-0000.parquet")
    assert set(audio["field"]) == {"prompt", "subject", "attribute"}
    wer = json.loads((res / "speech/wer.json").read_text())
    assert 0.0 <= wer["corpus_wer"] <= 1.0
    tokens = pd.read_parquet(res / "speech/tokens/shard-0000.parquet")
    assert len(tokens) == 2 and all(len(u) > 5 for u in tokens["units"])
    dis = pd.read_csv(res / "speech/alignment_disagreement.tsv", sep="\t")
    assert dis["n"].iloc[0] > 0
    assert list((res / "figures/speech").glob("alignment_*.png"))
    tmap = pd.read_parquet(res / "speech/token_map/speechlm/shard-0000.parquet")
    assert tmap["is_subject"].any()
    ev = json.loads((res / "speechlm/speechlm/eval.json").read_text())
    assert ev  # the build evaluated the model it made
    s2t = pd.concat(pd.read_parquet(p) for p in (res / "filter/speechlm/s2t").glob("*.parquet"))
    assert len(s2t) == 3 and set(s2t["modality"]) == {"s2t"}
    assert (res / "gap/speechlm.parquet").exists() and (res / "figures/modality_gap_speechlm.png").exists()


def test_comparison_tables_of_the_run(res: Path):
    """Issue 10 on the real tiny run: n on every row, prediction apart from last token in S->T, exact tests."""
    for path in res.glob("aie/*/*.parquet"):
        aie = pd.read_parquet(path)
        assert aie["n"].notna().all() and (aie["n"] > 0).all(), path
    s2t = pd.read_parquet(res / "aie/speechlm/s2t.parquet")
    if len(s2t):  # facts kept in S->T: the marker and the last word are separate categories, never the same cells
        assert {"prediction", "last token"} <= set(s2t["category"])
        assert (s2t["same_cells_as"] == "").all()
    t2t = pd.read_parquet(res / "aie/smollm2/t2t.parquet")
    assert set(t2t.loc[t2t["category"] == "prediction", "same_cells_as"]) == {"last token"}
    for name in ("peaks", "category_peaks", "category_ratios", "tests"):
        df = pd.read_csv(res / f"compare/{name}.csv")
        assert "n" in df.columns or {"n_t2t", "n_s2t"} <= set(df.columns), name
    tests = pd.read_csv(res / "compare/tests.csv")
    assert (tests["method"] == "exact").all() and tests["n"].notna().all()  # n <= 20: exact enumeration
    assert (tests["n_perm"] == 2 ** tests["n"]).all()
    assert (res / "compare/tests_dropped.csv").exists() and (res / "figures/figure2_signed.png").exists()


def test_summary_tables_regenerate_from_the_run(res: Path, tmp_path: Path):
    from factrace.analysis.summary import collect, readme_blocks, readme_update, render_all, write_summary

    summary = collect(res)
    assert {"demo-facts", "demo-noise", "demo-categories", "demo-peaks", "demo-tests", "demo-figure2",
            "demo-speech", "demo-gap"} <= set(summary["tables"])
    peaks = pd.read_csv(res / "compare/peaks.csv")
    assert len(summary["tables"]["demo-peaks"]["rows"]) == len(peaks)
    noise = summary["tables"]["demo-noise"]["rows"]
    assert any(r[3] != "-" for r in noise)  # ROME's std is measured for text
    write_summary(summary, tmp_path / "summary", res)
    assert (tmp_path / "summary/figure2.png").exists()
    readme = tmp_path / "README.md"
    readme.write_text("".join(f"<!-- factrace:summary {n} -->\n<!-- /factrace:summary -->\n" for n in summary["tables"]))
    assert readme_update(readme, render_all(summary))
    assert readme_blocks(readme.read_text()) == render_all(summary)
    assert not readme_update(readme, render_all(collect(res)))  # same results, same tables


def test_nothing_to_do_after_a_run(workdir: Path):
    out = snakemake(workdir, "-n", "--configfile", "config/tiny.yaml").stdout
    assert "Nothing to be done" in out, out[-2000:]


def _planned_jobs(stdout: str) -> dict[str, int]:
    """The job-stats table of a dry run: rule -> count."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job ") and "count" in line)
    counts = {}
    for line in lines[start + 2 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_editing_one_fact_reruns_only_its_shard(workdir: Path):
    original = (workdir / "facts.json").read_text()
    facts = json.loads(original)
    facts[2]["prompt"] = "The Eiffel Tower is in the city of"
    facts[2]["template"] = "The {} is in the city of"
    (workdir / "facts.json").write_text(json.dumps(facts, indent=1))
    try:
        proc = snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
        jobs = _planned_jobs(proc.stdout)
        outputs = "\n".join(line for line in proc.stdout.splitlines() if "output:" in line)
        # shard 0001 alone for SmolLM2's shard, speech and filter jobs, and the aggregation downstream
        assert jobs["shard"] == 1 and jobs["tts"] == 1
        assert "fit_units" not in jobs and "convert_model" not in jobs
        assert "smollm2/t2t/shard-0000" not in outputs
        # both stages of the offline speech LM are trained on the facts: the edited fact rebuilds them, and their
        # jobs rerun in every shard (filter and trace: backbone T->T, speech LM T->T and S->T; their noise scales)
        assert jobs["build_speechlm_backbone"] == 1 and jobs["build_speechlm"] == 1
        assert jobs["filter"] == 1 + 3 * 2
        # the noise multiplier is measured on the facts the filters keep (issue 21): SmolLM2's noise job reruns with
        # its filter of shard 0001, and so do its trace jobs in both shards (a trace job keeps its tables when the
        # noise scale is unchanged: tests/test_trace_job.py); one trace job per (model, modality, shard)
        assert jobs["noise_scale"] == 1 + 3
        assert jobs["trace"] == 2 + 3 * 2
        assert jobs["aie"] == 4  # one per model x modality, downstream of every shard
    finally:
        (workdir / "facts.json").write_text(original)
