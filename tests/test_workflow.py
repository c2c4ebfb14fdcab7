"""End-to-end: the workflow on a tiny config in a temporary directory, with the real offline model.

One session-scoped run (3 facts in 2 shards, speech included); the tests then read its outputs and use dry runs
to show what an edit would rerun.
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
def workdir(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("wf")
    copy_workflow(wd)
    (wd / "facts.json").write_text(json.dumps(FACTS, indent=1))
    tiny_config(wd)
    snakemake(wd, "--configfile", "config/tiny.yaml", "--cores", "2")
    return wd


def test_run_writes_tables_and_figures(workdir: Path):
    res = workdir / "results"
    assert sorted(p.name for p in (res / "prompts").glob("*.parquet")) == ["shard-0000.parquet", "shard-0001.parquet"]
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
    assert list((res / "figures/prompts").glob("*.png"))
    qc = pd.read_csv(res / "qc/qc.tsv", sep="\t")
    assert qc.loc[qc.stage == "facts", "n_facts"].item() == 3


def test_speech_outputs(workdir: Path):
    res = workdir / "results"
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


def test_nothing_to_do_after_a_run(workdir: Path):
    out = snakemake(workdir, "-n", "--configfile", "config/tiny.yaml").stdout
    assert "Nothing to be done" in out or "jobs" not in out


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
    facts = json.loads((workdir / "facts.json").read_text())
    facts[2]["prompt"] = "The Eiffel Tower is in the city of"
    facts[2]["template"] = "The {} is in the city of"
    (workdir / "facts.json").write_text(json.dumps(facts, indent=1))
    try:
        proc = snakemake(workdir, "-n", "--configfile", "config/tiny.yaml")
        jobs = _planned_jobs(proc.stdout)
        # shard 0001 alone: its shard, speech, filter and trace jobs; the noise scale (over all facts) and the
        # aggregation downstream; nothing of shard 0000
        assert jobs["shard"] == 1 and jobs["tts"] == 1
        assert jobs["filter"] == 4  # SmolLM2 T->T, backbone T->T, speech LM T->T and S->T, of this shard only
        # two kinds x (two layer windows of SmolLM2 T->T + one of the backbone + one of the speech LM in T->T and
        # in S->T), one shard
        assert jobs["trace"] == 2 * (2 + 1 + 1 + 1)
        assert "build_speechlm" not in jobs and "fit_units" not in jobs and "noise_scale" not in jobs
        assert "shard-0000" not in "\n".join(l for l in proc.stdout.splitlines() if "output:" in l)
        assert jobs["aie"] == 4  # one per model x modality, downstream of every shard
    finally:
        (workdir / "facts.json").write_text(json.dumps(FACTS, indent=1))
