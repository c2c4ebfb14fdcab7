"""The same config and seed give identical tables on the CPU: shard, filter and trace, each run twice."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from factrace.core import io
from test_resume import FACTS, one_thread, run_cli, save_tiny_model, trace_argv, write_trace_inputs  # noqa: F401


def _same_table(a, b, contract: str) -> None:
    pd.testing.assert_frame_equal(io.read_table(a, contract), io.read_table(b, contract), check_exact=True)
    # provenance carries no timestamps: the stored metadata is identical too
    assert io.read_provenance(a) == io.read_provenance(b)
    assert a.read_bytes() == b.read_bytes()  # and so are the files, byte for byte


def test_shard_filter_trace_twice_identical(tmp_path, one_thread):  # noqa: F811
    model_dir = save_tiny_model(tmp_path / "model")
    spec = json.dumps({"loader": "hf", "path": str(model_dir), "n_layers": 6, "dtype": "float32",
                       "device": "cpu"})
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(FACTS[::-1]))  # file order must not matter either
    outs = {}
    for run in ("a", "b"):
        d = tmp_path / run
        run_cli(["shard", "--facts", str(facts), "--shard", "0000", "--shard-size", "8", "--out",
                 str(d / "prompts.parquet")])
        run_cli(["filter", "--model", "tiny", "--model-spec", spec, "--modality", "t2t", "--prompts", str(d / "prompts.parquet"),
                 "--max-new-tokens", "3", "--out", str(d / "filter.parquet")])
        inputs = write_trace_inputs(d / "inputs")  # a filter table that keeps every fact, and the noise scale
        inputs["prompts"] = d / "prompts.parquet"  # the shard stage's table
        run_cli(trace_argv(model_dir, inputs, d / "trace.parquet", kind="hidden", samples=3, seed=7))
        outs[run] = d
    a, b = outs["a"], outs["b"]
    _same_table(a / "prompts.parquet", b / "prompts.parquet", "prompts")
    _same_table(a / "filter.parquet", b / "filter.parquet", "filter")
    _same_table(a / "trace.parquet", b / "trace.parquet", "trace")
    trace = io.read_table(a / "trace.parquet", "trace")
    assert sorted(trace["known_id"].unique()) == [0, 1, 2, 3]
    assert (trace["seed"] == 7).all()
    # noise actually corrupts (so the equality above is not that of constant tables)
    assert trace["p_restored"].nunique() > 1


def test_another_seed_gives_other_noise(tmp_path, one_thread):  # noqa: F811
    model_dir = save_tiny_model(tmp_path / "model")
    inputs = write_trace_inputs(tmp_path / "inputs")
    for seed in (1, 2):
        run_cli(trace_argv(model_dir, inputs, tmp_path / f"trace{seed}.parquet", kind="hidden", samples=3,
                           seed=seed))
    t1 = io.read_table(tmp_path / "trace1.parquet", "trace")
    t2 = io.read_table(tmp_path / "trace2.parquet", "trace")
    with pytest.raises(AssertionError):
        pd.testing.assert_series_equal(t1["p_restored"], t2["p_restored"], check_exact=True)
