"""Every fact's fate per model and modality in the QC table: dropped, not traced (cap), traced, failed."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest
from factrace.analysis import commands as cli
from factrace.analysis.qc import fact_fates, parse_caps
from factrace.core.io import read_table, write_table

NO_MATCH = "generation does not contain the attribute"


def prompts(ids: list[int], shard_size: int = 4) -> pd.DataFrame:
    return pd.DataFrame({
        "known_id": ids, "subject": [f"S{i}" for i in ids], "attribute": "Rome", "prompt": [f"S{i} is in" for i in ids],
        "template": "{} is in", "relation_id": "P1", "prediction": "", "shard": [i // shard_size for i in ids],
    })


def filt(model: str, modality: str, rows: list[tuple[int, bool, str, str]]) -> pd.DataFrame:
    """rows: (known_id, kept, generation, reason)."""
    return pd.DataFrame({
        "known_id": [r[0] for r in rows], "model": model, "modality": modality,
        "generation": [r[2] for r in rows], "match": ["exact" if r[1] else "none" for r in rows],
        "kept": [r[1] for r in rows], "target_token_id": 5, "target_token": "Rome", "reason": [r[3] for r in rows],
    })


@pytest.fixture
def tables():
    p = prompts([0, 1, 2, 3, 4, 5])
    t2t = filt("lm", "t2t", [
        (0, True, "Rome", ""), (1, True, "Rome", ""), (2, False, "Paris, of course", NO_MATCH),
        (3, True, "Rome", ""),  # third kept fact of shard 0: past the cap of 2
        (4, True, "Rome", ""), (5, True, "Rome", ""),
    ])
    s2t = filt("lm", "s2t", [
        (0, True, "Rome", ""), (1, False, "", "token map failed: subject 'S1' is not at the template's placeholder"),
        (2, False, "", "ASR check: WER 0.8 > 0.5"), (3, True, "Rome", ""), (4, True, "Rome", ""),
        # 5 has no filter row
    ])
    traced = pd.DataFrame({"known_id": [0, 1, 4, 0, 3], "model": "lm",
                           "modality": ["t2t", "t2t", "t2t", "s2t", "s2t"]})
    return p, pd.concat([t2t, s2t], ignore_index=True), traced


def test_one_row_per_fact_model_modality_with_its_fate(tables):
    p, f, traced = tables
    fates = fact_fates(p, f, traced, max_facts_per_shard={"lm": 2})
    assert len(fates) == 12 and not fates.duplicated(["known_id", "model", "modality"]).any()
    got = {(r.modality, r.known_id): r.fate for r in fates.itertuples()}
    assert got == {
        ("t2t", 0): "traced", ("t2t", 1): "traced", ("t2t", 2): "dropped", ("t2t", 3): "not_traced",
        ("t2t", 4): "traced", ("t2t", 5): "failed",  # kept, under the cap of its shard, but not traced
        ("s2t", 0): "traced", ("s2t", 1): "failed", ("s2t", 2): "dropped", ("s2t", 3): "traced",
        ("s2t", 4): "failed", ("s2t", 5): "failed",
    }
    row = fates.set_index(["modality", "known_id"])
    assert row.loc[("t2t", 2), "generation"] == "Paris, of course"
    assert "does not contain the attribute" in row.loc[("t2t", 2), "reason"]
    assert "max_facts_per_shard = 2 for lm" in row.loc[("t2t", 3), "reason"]
    assert "not at the template's placeholder" in row.loc[("s2t", 1), "reason"]
    assert row.loc[("s2t", 2), "reason"].startswith("filter: ASR check")
    assert "no filter row" in row.loc[("s2t", 5), "reason"]
    assert "absent from the trace tables" in row.loc[("t2t", 5), "reason"]


def test_without_a_cap_untraced_kept_facts_are_failures(tables):
    p, f, traced = tables
    for caps in ({}, {"other_model": 1}):  # a cap applies to its own model only
        fates = fact_fates(p, f, traced, max_facts_per_shard=caps)
        assert fates.set_index(["modality", "known_id"]).loc[("t2t", 3), "fate"] == "failed"


def test_caps_are_parsed_per_model_and_bad_ones_named():
    assert parse_caps(["smollm2=2", "speech=lm=3"]) == {"smollm2": 2, "speech=lm": 3}
    assert parse_caps([]) == {}
    for bad in ("smollm2", "smollm2=0", "=2", "smollm2=two"):
        with pytest.raises(ValueError, match="MODEL=N"):
            parse_caps([bad])


def test_qc_command_writes_counts_and_fates(tables, tmp_path):
    p, f, traced = tables
    write_table(p, tmp_path / "prompts.parquet", "prompts")
    write_table(f, tmp_path / "filter.parquet", "filter")
    tr = traced.assign(kind="hidden", layer=0, position=0, category="last", text_token_index=0, p_clean=0.5,
                       p_corrupted=0.1, p_restored=0.2, noise_scale=1.0, samples=2, window=1, seed=1,
                       subject_start=0, subject_end=1, n_tokens=3, text_subject_start=0, text_subject_end=1,
                       n_text_tokens=3)
    write_table(tr, tmp_path / "trace.parquet", "trace")
    args = argparse.Namespace(prompts=[str(tmp_path / "prompts.parquet")], filters=[str(tmp_path / "filter.parquet")],
                              traces=[str(tmp_path / "trace.parquet")], out=str(tmp_path / "qc.tsv"),
                              fates=str(tmp_path / "fates.parquet"), max_facts_per_shard=["lm=2"])
    cli.cmd_qc(args)
    fates = read_table(tmp_path / "fates.parquet")
    assert len(fates) == 12 and set(fates["fate"]) == {"traced", "dropped", "not_traced", "failed"}
    qc = pd.read_csv(tmp_path / "qc.tsv", sep="\t")
    counts = qc[qc.stage == "fate"].set_index(["modality", "status"])["n_facts"]
    assert counts[("t2t", "traced")] == 3 and counts[("t2t", "not_traced")] == 1
