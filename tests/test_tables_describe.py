"""Self-describing tables (issue 24.4): one category vocabulary across trace and AIE tables, decoded tokens, a
description for every column (in contracts.py, in each written table's schema, printed by `factrace describe`),
and provenance that names the model, the commit and the lock file without making two runs' tables differ."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from factrace.analysis.aie import aie_table
from factrace.core import io
from factrace.core.contracts import CONTRACTS, DESCRIPTIONS, TABLES, describe, empty
from factrace.core.provenance import Provenance, git_state, lock_sha256
from factrace.core.tokens import token_text
from factrace.tracing.categories import CATEGORY_MEANINGS, TRACE_CATEGORIES, trace_categories
from test_resume import run_cli


# ------------------------------------------------------------------------------------------------ descriptions
@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_every_contract_column_has_a_description(contract):
    assert contract in TABLES and TABLES[contract].strip()
    missing = [c for c in CONTRACTS[contract] if not DESCRIPTIONS[contract].get(c, "").strip()]
    assert not missing, f"{contract}: columns without a description: {missing}"
    assert list(describe(contract))[: len(CONTRACTS[contract])] == list(CONTRACTS[contract])


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_a_written_table_carries_its_descriptions(tmp_path, contract):
    path = io.write_table(empty(contract), tmp_path / f"{contract}.parquet", contract, Provenance(stage="t"))
    schema = pq.read_schema(path)
    for col in CONTRACTS[contract]:
        meta = schema.field(col).metadata or {}
        assert meta.get(b"description", b"").decode() == DESCRIPTIONS[contract][col]
    assert pd.read_parquet(path).columns.tolist() == list(CONTRACTS[contract])  # data untouched


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
def test_describe_prints_every_column_of_every_contract(capsys, contract):
    run_cli(["describe", contract])
    out = capsys.readouterr().out
    assert TABLES[contract] in out
    for col, desc in describe(contract).items():
        line = next(ln for ln in out.splitlines() if ln.split() and ln.split()[0] == col)
        assert desc in line


def test_describe_a_file_reads_its_schema_and_falls_back_to_the_contract(tmp_path, capsys):
    df = empty("aie").assign(same_cells_as=pd.Series(dtype=object))
    path = io.write_table(df, tmp_path / "aie.parquet", "aie", Provenance(stage="aie"))
    run_cli(["describe", str(path)])
    out = capsys.readouterr().out
    assert "contract aie" in out and DESCRIPTIONS["aie"]["same_cells_as"] in out
    # a table written before descriptions were stored: they come from the contract its provenance names
    import pyarrow as pa

    old = tmp_path / "old.parquet"
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table.replace_schema_metadata({**table.schema.metadata, io.META_KEY: b'{"contract": "aie"}'}),
                   old)
    assert all(d == DESCRIPTIONS["aie"][c] for c, _t, d in io.column_descriptions(old))
    with pytest.raises(SystemExit, match="no such file or contract"):
        run_cli(["describe", str(tmp_path / "nope.parquet")])


# -------------------------------------------------------------------------------------------------- categories
def test_trace_categories_one_vocabulary():
    # S->T: <s> [Speech] then speech tokens of 4 words (subject = word 0), then the [Text] marker
    tti = [-1, -1, 0, 0, 1, 2, -1, 3, 3]
    cats = trace_categories(range(10), [*tti, 3], 0, 1, 4, 10)
    assert list(cats) == ["unmapped", "unmapped", "last subject", "last subject", "first subsequent",
                          "further tokens", "unmapped", "last token", "last token", "prediction"]
    # T->T: the prediction position is the last token, labelled prediction
    cats = trace_categories(range(5), range(5), 1, 3, 5, 5)
    assert list(cats) == ["before subject", "first subject", "last subject", "first subsequent", "prediction"]
    assert set(TRACE_CATEGORIES) <= set(CATEGORY_MEANINGS)
    assert "unmapped" in DESCRIPTIONS["trace"]["category"] and "prediction" in DESCRIPTIONS["trace"]["category"]


def _text_trace(n_facts=4, n=5, layers=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for kid in range(n_facts):
        cats = trace_categories(range(n), range(n), 1, 3, n, n)
        for layer in range(layers):
            for p in range(n):
                rows.append({"known_id": kid, "model": "m", "modality": "t2t", "kind": "hidden", "layer": layer,
                             "position": p, "category": cats[p], "text_token_index": p, "p_clean": 0.9,
                             "p_corrupted": 0.1, "p_restored": float(rng.uniform(0.1, 0.9)), "noise_scale": 1.0,
                             "samples": 2, "window": 1, "seed": 0, "subject_start": 1, "subject_end": 3,
                             "n_tokens": n, "text_subject_start": 1, "text_subject_end": 3, "n_text_tokens": n})
    return pd.DataFrame(rows)


def test_trace_groupby_category_agrees_with_the_aie_table():
    trace = _text_trace()
    aie = aie_table(trace, combine="mean", n_boot=10, seed=0)
    by_cat = (trace.assign(ie=trace.p_restored - trace.p_corrupted)
              .groupby(["category", "layer"])["ie"].mean())
    for cat in ("first subject", "last subject", "first subsequent", "prediction"):
        got = aie[aie.category == cat].set_index("layer")["aie"]
        np.testing.assert_allclose(got.to_numpy(), by_cat.loc[cat].loc[got.index].to_numpy())
    # the AIE table's `last token` of a text trace is the same cells as `prediction`, and says so
    assert set(aie.loc[aie.category == "last token", "same_cells_as"]) == {"prediction"}
    # AIE numbers do not depend on the trace table's labels (they are recomputed from the positions)
    relabelled = trace.assign(category="whatever")
    pd.testing.assert_frame_equal(aie_table(relabelled, combine="mean", n_boot=10, seed=0), aie)


def test_token_text_decodes_raw_tokens():
    assert token_text("Ã£o") == "ão" and token_text("ĠPaulo") == " Paulo" and token_text("▁Paris") == " Paris"
    assert token_text("[Text]") == "[Text]" and token_text("<s>") == "<s>"
    from factrace.analysis.figures.labels import token_text as figures_token_text

    assert figures_token_text is token_text


# -------------------------------------------------------------------------------------------------- provenance
def test_git_state_outside_git_is_none(tmp_path):
    assert git_state(tmp_path) == (None, None)
    assert lock_sha256(tmp_path) is None


def test_git_state_and_lock_hash_of_a_checkout(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "lock.txt").write_text("numpy==2.0\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_state(tmp_path) == (head, False)
    import hashlib

    assert lock_sha256(tmp_path) == hashlib.sha256(b"numpy==2.0\n").hexdigest()
    (tmp_path / "results.txt").write_text("untracked output does not make the checkout dirty")
    git_state.cache_clear()
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "requirements" / "lock.txt").write_text("numpy==2.1\n")
    git_state.cache_clear()
    assert git_state(tmp_path) == (head, True)


def test_provenance_records_the_code_and_is_the_same_twice(tmp_path):
    a, b = Provenance(stage="x").to_dict(), Provenance(stage="x").to_dict()
    assert a == b  # no timestamp: two runs of one commit write the same tables
    for key in ("git_commit", "git_dirty", "lock_sha256"):
        assert key in a
    commit, dirty = git_state()
    assert a["git_commit"] == commit and a["git_dirty"] == dirty
    p1 = io.write_table(empty("aie"), tmp_path / "1.parquet", "aie", Provenance(stage="aie"))
    p2 = io.write_table(empty("aie"), tmp_path / "2.parquet", "aie", Provenance(stage="aie"))
    assert p1.read_bytes() == p2.read_bytes()


def test_aggregated_tables_carry_model_and_weights(tmp_path, capsys):
    traces = []
    for kind in ("hidden", "mlp"):
        df = _text_trace().assign(kind=kind)
        traces.append(io.write_table(df, tmp_path / f"{kind}.parquet", "trace",
                                     Provenance(stage="trace", model_id="m", weights_sha256="ab" * 32)))
    out = tmp_path / "aie.parquet"
    run_cli(["aie", "--inputs", *map(str, traces), "--n-boot", "10", "--seed", "0", "--combine", "mean",
             "--out", str(out)])
    capsys.readouterr()
    run_cli(["provenance", str(out)])
    prov = json.loads(capsys.readouterr().out)
    assert prov["model_id"] == "m" and prov["weights_sha256"] == "ab" * 32
    assert "git_commit" in prov and "lock_sha256" in prov
    other = io.write_table(_text_trace(), tmp_path / "other.parquet", "trace",
                           Provenance(stage="trace", model_id="n", weights_sha256="cd" * 32))
    assert io.carried_identity([*traces, other]) == {"model_id": ["m", "n"], "weights_sha256": ["ab" * 32, "cd" * 32]}
