"""One trace job traces every kind of a shard with the model loaded once, and keeps the table of a kind whose own
settings did not change (issue 15.13: changing `tracing.window` retraced `hidden`, which does not use it)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_resume import N_LAYERS, one_thread, run_cli, save_tiny_model, write_trace_inputs  # noqa: F401


def _argv(model_dir, inputs, outs, window: int) -> list[str]:
    from test_resume import model_spec

    kinds = [["hidden", {"samples": 2, "seed": 1}], ["mlp", {"samples": 2, "seed": 1, "window": window}]]
    return ["trace", "--model", "tiny", "--model-spec", model_spec(model_dir), "--modality", "t2t",
            "--kind-settings", json.dumps(kinds), "--prompts", str(inputs["prompts"]), "--filter",
            str(inputs["filter"]), "--noise", str(inputs["noise"]), "--engine", "fast", "--max-rows", "64",
            "--out", *map(str, outs)]


@pytest.fixture(scope="module")
def traced(tmp_path_factory, one_thread):  # noqa: F811
    root = tmp_path_factory.mktemp("job")
    model_dir = save_tiny_model(root / "model")
    inputs = write_trace_inputs(root / "inputs")
    outs = [root / "hidden" / "shard-0000.parquet", root / "mlp" / "shard-0000.parquet"]
    run_cli(_argv(model_dir, inputs, outs, window=3))
    return model_dir, inputs, outs


def test_one_job_writes_every_kind_over_all_layers(traced):
    from factrace.core import io

    _model, _inputs, (hidden, mlp) = traced
    h, m = io.read_table(hidden, "trace"), io.read_table(mlp, "trace")
    assert set(h["kind"]) == {"hidden"} and set(m["kind"]) == {"mlp"}
    assert sorted(h["layer"].unique()) == list(range(N_LAYERS)) == sorted(m["layer"].unique())
    assert set(h["window"]) == {1} and set(m["window"]) == {3}


def test_changing_the_window_retraces_mlp_and_keeps_hidden(traced, caplog):
    from factrace.core import io

    model_dir, inputs, (hidden, mlp) = traced
    before = hidden.read_bytes(), hidden.stat().st_mtime_ns, io.read_table(mlp, "trace")
    log = run_cli(_argv(model_dir, inputs, [hidden, mlp], window=2), caplog)
    assert "kind hidden unchanged" in log
    assert (hidden.read_bytes(), hidden.stat().st_mtime_ns) == before[:2]
    after = io.read_table(mlp, "trace")
    assert set(after["window"]) == {2}
    assert not after["p_restored"].equals(before[2]["p_restored"])


def test_a_changed_input_retraces_every_kind(traced, tmp_path, caplog):
    model_dir, inputs, (hidden, mlp) = traced
    outs = [tmp_path / "h.parquet", tmp_path / "m.parquet"]
    for src, dst in zip((hidden, mlp), outs):
        dst.write_bytes(src.read_bytes())
    noise = tmp_path / "noise.json"
    noise.write_text(json.dumps({"scale": 2.5}))
    log = run_cli(_argv(model_dir, {**inputs, "noise": noise}, outs, window=2), caplog)
    assert "unchanged" not in log
    from factrace.core import io

    assert set(io.read_table(outs[0], "trace")["noise_scale"]) == {2.5}


def test_a_trace_table_carries_the_models_window(traced, tmp_path):
    """Issue 21 (1): the trace rule's `kinds` hold the model's window (common.smk's kind_settings: `model_window`);
    the mlp table records it in its `window` column, hidden 1, and the AIE table carries it on to the figures."""
    from factrace.core import io
    from factrace.tracing.method import model_window

    model_dir, inputs, _outs = traced
    cfg = {"models": {"tiny": {"n_layers": N_LAYERS}}, "tracing": {"window": 10, "window_max_fraction": 0.34}}
    window = model_window(cfg, "tiny")
    assert window == 2  # 6 layers: floor(6 x 0.34), not tracing.window's 10
    outs = [tmp_path / "hidden.parquet", tmp_path / "mlp.parquet"]
    run_cli(_argv(model_dir, inputs, outs, window=window))
    assert set(io.read_table(outs[0], "trace")["window"]) == {1}
    assert set(io.read_table(outs[1], "trace")["window"]) == {window}
    aie = tmp_path / "aie.parquet"
    run_cli(["aie", "--inputs", *map(str, outs), "--n-boot", "0", "--combine", "mean", "--seed", "1", "--out", str(aie)])
    got = io.read_table(aie, "aie").groupby("kind")["window"].unique()
    assert list(got["hidden"]) == [1] and list(got["mlp"]) == [window]


def test_a_rewritten_noise_file_with_the_same_scale_keeps_every_kind(traced, tmp_path, caplog):
    """Issue 21 (5): the noise job reruns when any shard's filter changes (the multiplier is measured on the kept
    facts); the trace tables depend on its JSON only through the scale."""
    model_dir, inputs, (hidden, mlp) = traced
    outs = [tmp_path / "h.parquet", tmp_path / "m.parquet"]
    for src, dst in zip((hidden, mlp), outs):
        dst.write_bytes(src.read_bytes())
    scale = json.loads(inputs["noise"].read_text())["scale"]
    noise = tmp_path / "noise.json"
    noise.write_text(json.dumps({"scale": scale, "multiplier": 3.0, "median_ratio": 0.2, "n_traced_facts": 3}))
    window = set(pd.read_parquet(mlp)["window"])
    log = run_cli(_argv(model_dir, {**inputs, "noise": noise}, outs, window=window.pop()), caplog)
    assert "kind hidden unchanged" in log and "kind mlp unchanged" in log


def test_one_output_per_kind_is_required(traced):
    from factrace.tracing.job import kind_jobs

    with pytest.raises(ValueError, match="one --out per kind"):
        kind_jobs([("hidden", {"samples": 1, "seed": 1})], ["a", "b"], layers=(0, 2), engine="fast", max_rows=8)


def test_equal_to_separate_kind_jobs(traced, tmp_path):
    """The combined job gives the same hidden table as a job of that kind alone (the noise is per fact)."""
    from factrace.core import io

    model_dir, inputs, (hidden, _mlp) = traced
    alone = tmp_path / "alone.parquet"
    argv = _argv(model_dir, inputs, [alone], window=2)
    argv[argv.index("--kind-settings") + 1] = json.dumps([["hidden", {"samples": 2, "seed": 1}]])
    run_cli(argv)
    pd.testing.assert_frame_equal(io.read_table(alone, "trace"), io.read_table(hidden, "trace"), check_exact=True)


def test_a_bf16_model_spec_traces_in_bf16_and_says_so(traced, tmp_path):
    """Issue 22: `models.<name>.dtype: bfloat16` loads the model in bf16 on the CPU; the table records the dtype
    (float32 beside it), and its restored probabilities are near float32's, not equal (bf16 did run)."""
    from factrace.core import io

    model_dir, inputs, outs32 = traced
    spec = json.loads(__import__("test_resume").model_spec(model_dir))
    argv = _argv(model_dir, inputs, [tmp_path / "hidden.parquet", tmp_path / "mlp.parquet"], window=3)
    argv[argv.index("--model-spec") + 1] = json.dumps({**spec, "dtype": "bfloat16"})
    run_cli(argv)
    for out32, kind in zip(outs32, ("hidden", "mlp"), strict=True):
        t32, t16 = io.read_table(out32, "trace"), io.read_table(tmp_path / f"{kind}.parquet", "trace")
        assert set(t32["dtype"]) == {"float32"} and set(t16["dtype"]) == {"bfloat16"}
        diff = (t16["p_restored"] - t32["p_restored"]).abs()
        assert 0 < diff.max() < 0.05, kind
