"""Issue 21 (5): one noise rule for every model and modality, computed, not chosen. The multiplier is the first of
`tracing.noise_multiplier` and the `tracing.noise_grid` values above it under which the median p_corrupted /
p_clean of the traced facts is at most `tracing.noise_target_ratio`; none reaching it: the largest, flagged. One
home, `factrace.core.noise_rule`, used by the noise job (factrace.tracing.scale) and the offline speech LM's
eval.json."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import pytest
from factrace.core.noise_rule import NoiseRule, choose_multiplier, median_ratio
from test_resume import N_LAYERS, one_thread, run_cli, save_tiny_model, write_trace_inputs  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
GRID = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 15.0, 20.0)


def _fake(ratios: dict[float, float | None]):
    """A ratio function from a table, recording the multipliers it was asked for."""
    asked: list[float] = []

    def ratio_at(m: float) -> float | None:
        asked.append(m)
        return ratios[m]

    return ratio_at, asked


def test_monotone_ratios_give_the_first_multiplier_at_the_target():
    ratio_at, asked = _fake({3.0: 0.61, 4.0: 0.45, 5.0: 0.31, 6.0: 0.29, 7.0: 0.2, 8.0: 0.1})
    got = choose_multiplier(NoiseRule(3.0, (3.0, 4.0, 5.0, 6.0, 7.0, 8.0), 0.3), ratio_at)
    assert (got.multiplier, got.median_ratio, got.reached) == (6.0, 0.29, True)
    assert asked == [3.0, 4.0, 5.0, 6.0]  # the values above it are not evaluated
    assert got.evaluated == ((3.0, 0.61), (4.0, 0.45), (5.0, 0.31), (6.0, 0.29))
    assert got.as_dict()["medians_evaluated"][-1] == {"multiplier": 6.0, "median_ratio": 0.29}


def test_the_target_itself_is_reached():
    ratio_at, _ = _fake({3.0: 0.3})
    assert choose_multiplier(NoiseRule(3.0, GRID, 0.3), ratio_at).multiplier == 3.0


def test_non_monotone_ratios_give_the_smallest_multiplier_that_reaches():
    ratio_at, asked = _fake({3.0: 0.5, 4.0: 0.25, 5.0: 0.6, 6.0: 0.1})
    got = choose_multiplier(NoiseRule(3.0, (3.0, 4.0, 5.0, 6.0), 0.3), ratio_at)
    assert (got.multiplier, got.reached, asked) == (4.0, True, [3.0, 4.0])
    ratio_at, _ = _fake({3.0: 0.5, 4.0: 0.7, 5.0: 0.2, 6.0: 0.1})  # worse before it gets better
    assert choose_multiplier(NoiseRule(3.0, (3.0, 4.0, 5.0, 6.0), 0.3), ratio_at).multiplier == 5.0


def test_none_reaching_the_target_gives_the_largest_flagged(caplog):
    ratio_at, asked = _fake({3.0: 0.9, 5.0: 0.7, 8.0: 0.5})
    with caplog.at_level(logging.WARNING, logger="factrace"):
        got = choose_multiplier(NoiseRule(3.0, (8.0, 5.0, 3.0), 0.3), ratio_at, "speechlm/s2t")
    assert (got.multiplier, got.median_ratio, got.reached) == (8.0, 0.5, False)
    assert asked == [3.0, 5.0, 8.0]  # in ascending order, whatever the grid's
    assert got.as_dict()["reached"] is False
    assert "speechlm/s2t" in caplog.text and "reached: false" in caplog.text


def test_the_minimum_is_respected():
    """Grid values below `tracing.noise_multiplier` are never tried; the minimum is tried first even off the grid."""
    ratio_at, asked = _fake({3.0: 0.0, 5.0: 0.0})
    got = choose_multiplier(NoiseRule(3.0, (1.0, 2.0, 3.0, 5.0), 0.3), ratio_at)
    assert (got.multiplier, asked) == (3.0, [3.0])
    assert NoiseRule(3.5, (3.0, 4.0, 6.0), 0.3).candidates() == [3.5, 4.0, 6.0]
    assert NoiseRule(25.0, GRID, 0.3).candidates() == [25.0]  # above the grid: the minimum alone
    ratio_at, _ = _fake({25.0: 0.8})
    assert choose_multiplier(NoiseRule(25.0, GRID, 0.3), ratio_at).multiplier == 25.0


def test_a_ratio_that_cannot_be_measured_never_reaches():
    ratio_at, _ = _fake({3.0: None, 4.0: math.nan, 5.0: 0.1})
    got = choose_multiplier(NoiseRule(3.0, (4.0, 5.0), 0.3), ratio_at)
    assert got.multiplier == 5.0 and got.evaluated[:2] == ((3.0, None), (4.0, None))


def test_median_ratio_leaves_out_facts_the_model_does_not_answer():
    assert median_ratio([0.5, 0.8, 0.0, 1.0], [0.1, 0.4, 0.2, 0.3]) == pytest.approx(0.3)
    assert median_ratio([0.0], [0.1]) is None
    with pytest.raises(ValueError):
        NoiseRule(3.0, GRID, 0.0)
    with pytest.raises(ValueError):
        NoiseRule(0.0, GRID, 0.3)


def test_the_rule_reads_the_schema_defaults():
    from factrace.core.config import load_config

    for name in ("config.yaml", "paper.yaml"):
        rule = NoiseRule.from_config(load_config(ROOT / "config" / name)["tracing"])
        assert rule == NoiseRule(3.0, GRID, 0.3), name


def test_a_config_with_noise_multiplier_s2t_gets_a_clear_warning(tmp_path):
    """The former hand-set S->T multiplier: still accepted (so an old config runs), ignored, with one line that
    names the key and says the multiplier is now computed."""
    from factrace.core.config import ignored_key_warnings, load_config

    old = tmp_path / "old.yaml"
    old.write_text("tracing:\n  noise_multiplier_s2t: 7.0\n")
    cfg = load_config(old, default=ROOT / "config" / "config.yaml")
    warnings = ignored_key_warnings(cfg)
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("`tracing.noise_multiplier_s2t` is deprecated and ignored")
    assert "computed" in warnings[0] and "tracing.noise_grid" in warnings[0]
    assert ignored_key_warnings(load_config(ROOT / "config" / "config.yaml")) == []
    old.write_text("tracing:\n  noise_multiplier_s2t: null\n")  # the paper config's former "S->T as T->T"
    assert len(ignored_key_warnings(load_config(old, default=ROOT / "config" / "config.yaml"))) == 1


# ------------------------------------------------------------------------------------------------ the noise job
def _noise_argv(model_dir: Path, inputs: dict[str, Path], out: Path, target: float, *extra: str) -> list[str]:
    from test_resume import model_spec

    return ["noise-scale", "--model", "tiny", "--model-spec", model_spec(model_dir), "--modality", "t2t",
            "--prompts", str(inputs["prompts"]), "--filters", str(inputs["filter"]), "--noise-multiplier", "3",
            "--noise-grid", *map(str, GRID), "--noise-target-ratio", str(target), "--samples", "3", "--seed", "1",
            "--out", str(out), *extra]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_thread):  # noqa: F811
    root = tmp_path_factory.mktemp("noise")
    return save_tiny_model(root / "model"), write_trace_inputs(root / "inputs")


def test_the_noise_job_writes_the_multiplier_the_rule_chose(tiny, tmp_path):
    """The noise JSON: the chosen multiplier and its scale, the median ratio reached, the facts measured and every
    median evaluated; the rule applied to those medians gives the same multiplier. With the trace job's noise draws:
    the traces made with it have that median p_corrupted / p_clean."""
    from factrace.core import io

    model_dir, inputs = tiny
    out = tmp_path / "noise.json"
    run_cli(_noise_argv(model_dir, inputs, out, 0.5))
    got = json.loads(out.read_text())
    assert got["n_traced_facts"] == 4 and got["n_facts"] == 4 and got["samples"] == 3 and got["seed"] == 1
    assert got["scale"] == pytest.approx(got["multiplier"] * got["std"])
    evaluated = {e["multiplier"]: e["median_ratio"] for e in got["medians_evaluated"]}
    assert list(evaluated) == [m for m in GRID if m <= got["multiplier"]]
    ratio_at, _ = _fake(evaluated)
    again = choose_multiplier(NoiseRule(3.0, GRID, 0.5), ratio_at)
    assert (again.multiplier, again.median_ratio, again.reached) == (got["multiplier"], got["median_ratio"],
                                                                     got["reached"])
    # a target the minimum reaches (its own median): the job stops there
    at_minimum = evaluated[3.0]
    assert at_minimum <= 1  # a target must be <= 1 (the tiny random model's noise barely moves its answer)
    first = tmp_path / "first.json"
    run_cli(_noise_argv(model_dir, inputs, first, at_minimum))
    reached = json.loads(first.read_text())
    assert (reached["multiplier"], reached["reached"], reached["median_ratio"]) == (3.0, True, at_minimum)
    assert reached["medians_evaluated"] == [{"multiplier": 3.0, "median_ratio": at_minimum}]
    # the traces under that noise: their p_corrupted / p_clean is what the rule measured
    trace = tmp_path / "hidden.parquet"
    kinds = json.dumps([["hidden", {"samples": 3, "seed": 1}]])
    from test_resume import model_spec

    run_cli(["trace", "--model", "tiny", "--model-spec", model_spec(model_dir), "--modality", "t2t",
             "--kind-settings", kinds, "--prompts", str(inputs["prompts"]), "--filter", str(inputs["filter"]),
             "--noise", str(out), "--engine", "reference", "--max-rows", "64", "--out", str(trace)])
    per_fact = io.read_table(trace, "trace").groupby("known_id")[["p_clean", "p_corrupted"]].first()
    assert median_ratio(per_fact["p_clean"], per_fact["p_corrupted"]) == pytest.approx(got["median_ratio"], rel=1e-5)


def test_the_noise_job_flags_a_target_no_multiplier_reaches(tiny, tmp_path):
    model_dir, inputs = tiny
    out = tmp_path / "noise.json"
    run_cli(_noise_argv(model_dir, inputs, out, 1e-9, "--max-facts", "2"))
    got = json.loads(out.read_text())
    assert got["reached"] is False and got["multiplier"] == max(GRID)
    assert [e["multiplier"] for e in got["medians_evaluated"]] == list(GRID)
    assert got["n_traced_facts"] == 2  # max_facts_per_shard, as the trace job: the first 2 kept facts


def test_the_noise_job_measures_only_kept_facts(tiny, tmp_path):
    from factrace.core import io
    from factrace.core.provenance import Provenance

    model_dir, inputs = tiny
    filt = io.read_table(inputs["filter"], "filter")
    filt["kept"] = filt["known_id"].isin([1, 2])
    one = tmp_path / "filter.parquet"
    io.write_table(pd.DataFrame(filt), one, "filter", Provenance(stage="filter"))
    out = tmp_path / "noise.json"
    run_cli(_noise_argv(model_dir, {**inputs, "filter": one}, out, 0.5))
    got = json.loads(out.read_text())
    assert got["n_traced_facts"] == 2 and got["n_facts"] == 4  # the std is still over every fact's subject
    everyone = tmp_path / "all.json"
    run_cli(_noise_argv(model_dir, inputs, everyone, 0.5))
    assert json.loads(everyone.read_text())["std"] == got["std"]
    assert json.loads(everyone.read_text())["medians_evaluated"][0] != got["medians_evaluated"][0]


def test_a_noise_job_without_kept_facts_takes_the_minimum_flagged(tiny, tmp_path):
    """A model that keeps no fact of a modality traces nothing: its noise job still writes the std and the minimum
    multiplier (the run goes on), flagged reached: false."""
    from factrace.core import io
    from factrace.core.provenance import Provenance

    model_dir, inputs = tiny
    filt = io.read_table(inputs["filter"], "filter")
    filt["kept"] = False
    none = tmp_path / "filter.parquet"
    io.write_table(pd.DataFrame(filt), none, "filter", Provenance(stage="filter"))
    out = tmp_path / "noise.json"
    run_cli(_noise_argv(model_dir, {**inputs, "filter": none}, out, 0.3))
    got = json.loads(out.read_text())
    assert (got["multiplier"], got["reached"], got["n_traced_facts"], got["medians_evaluated"]) == (3.0, False, 0, [])
    assert got["scale"] == pytest.approx(3.0 * got["std"]) and got["median_ratio"] is None
