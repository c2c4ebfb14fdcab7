"""README's measured tables are generated (`make numbers`): the committed summary renders to README's blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from factrace.analysis.summary import collect, readme_blocks, readme_update, render_all, write_summary

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "resources" / "demo-summary" / "summary.json"


def test_readme_tables_equal_what_summarize_prints_for_the_committed_summary():
    blocks = render_all(json.loads(SUMMARY.read_text()))
    in_readme = readme_blocks((REPO / "README.md").read_text())
    assert in_readme, "README has no generated blocks"
    assert set(in_readme) == set(blocks), "README's blocks and the summary's tables differ; run `make numbers`"
    for name, body in blocks.items():
        assert in_readme[name] == body, f"README block {name} is stale; run `make numbers`"


def test_every_generated_table_names_its_source():
    for name, table in json.loads(SUMMARY.read_text())["tables"].items():
        assert table["sources"] and all(s.startswith("results/") for s in table["sources"]), name
        assert "Source: `results/" in render_all({"tables": {name: table}})[name]


def _results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    (res / "compare").mkdir(parents=True)
    pd.DataFrame([{"model": "slm", "modality": "s2t", "kind": "mlp", "peak_aie": 0.05, "peak_layer": 1,
                   "peak_category": "first subsequent", "ci_low": 0.01, "ci_high": 0.09, "n": 8, "min_facts": 5,
                   "categories_below_min_facts": "middle subject", "reference_peak_aie": 0.5,
                   "reference_peak_category": "last token", "reference_peak_layer": 2,
                   "ratio_of_grid_maxima": 0.1}]).to_csv(res / "compare" / "peaks.csv", index=False)
    return res


def test_readme_update_rewrites_only_the_marked_blocks_and_is_idempotent(tmp_path):
    res = _results(tmp_path)
    summary = collect(res)
    assert summary["tables"]["demo-peaks"]["rows"]
    gap = render_all(summary)["demo-gap"]  # a table the run lacks names the file it would come from
    assert gap == "*Not in this run: no such result file.*\nSource: `results/gap/*.parquet` (`make numbers`).\n"
    out = write_summary(summary, tmp_path / "summary")
    first = out.read_bytes()
    readme = tmp_path / "README.md"
    readme.write_text("# x\nhand text 0.42\n<!-- factrace:summary demo-peaks -->\nold | table\n"
                      "<!-- /factrace:summary -->\ntail\n")
    assert readme_update(readme, render_all(summary))
    text = readme.read_text()
    assert "hand text 0.42" in text and text.endswith("<!-- /factrace:summary -->\ntail\n")
    assert "| slm | s2t | mlp | 0.05 (0.01-0.09) | first subsequent, layer 1 | 8 | 0.1 | middle subject |" in text
    assert "`results/compare/peaks.csv`" in text
    assert not readme_update(readme, render_all(summary))  # a second run changes nothing
    write_summary(collect(res), tmp_path / "summary")
    assert out.read_bytes() == first


def test_speech_lm_measures_are_named_rows_with_their_n(tmp_path):
    """The build evaluation (eval.json) shows as one row per measure, with counts and the noise it used."""
    res = tmp_path / "results"
    (res / "speechlm" / "slm").mkdir(parents=True)
    acc = {"accuracy": 0.9, "correct": 9, "n": 10}
    noise = {"median_ratio": 0.2, "median_p_corrupted": 0.19, "median_p_clean": 0.95, "multiplier": 7.0, "n": 10}
    ev = {"stage": "speechlm", "text": acc, "main_rendering": "a@1",
          "speech": {"b@1": {"role": "unheard", **acc}, "a@1": {"role": "train", **acc},
                     "c@1": {"role": "held_out", "accuracy": 0.8, "correct": 8, "n": 10}},
          "ablation": {"draws": 2, "n_facts": 10, "swap": {"followed": 0.7, "n": 10},
                       "random_units_accuracy_by_margin": {"10": {"mean": 0.05}, "2": {"mean": 0.1}}},
          "noise_t2t": {**noise, "multiplier": 3.0, "reached": False}, "noise_s2t": {**noise, "reached": True},
          "noise_s2t_at_t2t_multiplier": {**noise, "median_ratio": 0.5, "multiplier": 3.0},
          "n_text_only": 10, "carry_over": {"backbone_text": acc, "speechlm_text": acc,
                                            "speech": {**acc, "accuracy": 0.0, "correct": 0},
                                            "template_prior": {**acc, "accuracy": 0.1, "correct": 1},
                                            "random_units": 0.05},
          "never_heard": {"speech": {**acc, "accuracy": 0.0, "correct": 0}},
          "timing_s": {"total": 300.0, "training": 200.0}}
    (res / "speechlm" / "slm" / "eval.json").write_text(json.dumps(ev))
    rows = collect(res)["tables"]["demo-speech"]["rows"]
    text = [" | ".join(r) for r in rows]
    renderings = [t for t in text if "speech accuracy" in t]
    assert ["trained rendering a@1 (main, traced)" in renderings[0], "held-out rendering c@1" in renderings[1],
            "unheard voice b@1" in renderings[2]] == [True] * 3
    assert renderings[1].endswith("80.0% (8 of 10)")
    margins = [t for t in text if "range widened" in t]
    assert "widened by 2" in margins[0] and "widened by 10" in margins[1] and "10.0% right (2 draws, 10 facts)" in margins[0]
    s2t = next(t for t in text if "(`noise_s2t`)" in t)
    assert s2t.endswith("0.2 (median p_corrupted 0.19, p_clean 0.95; 7 x std, 10 facts)")
    t2t = next(t for t in text if "(`noise_t2t`)" in t)  # the noise rule's flag: its target not reached
    assert t2t.endswith("0.2 (median p_corrupted 0.19, p_clean 0.95; 3 x std, target not reached, 10 facts)")
    assert any("T->T multiplier" in t and "0.5 (" in t and "3 x std" in t for t in text)
    # carry-over beside its chance levels, and the never-heard facts
    assert any("text-only facts" in t and "carry-over" in t and t.endswith("0.0% (0 of 10)") for t in text)
    assert any("template's most frequent heard answer" in t and t.endswith("10.0% (1 of 10)") for t in text)
    assert any("text-only facts, chance: subject's units random" in t and t.endswith("5.0% right") for t in text)
    assert any("never-heard facts" in t and t.endswith("0.0% (0 of 10)") for t in text)
    # wall-clock times differ between two runs of one commit: README's generated tables leave them out
    assert not [t for t in text if "timing" in t or "300" in t], text


def test_noise_table_shows_each_computed_multiplier_and_its_median_ratio(tmp_path):
    """Issue 21 (5): the multiplier is computed per model x modality; the table shows it, the median p_corrupted /
    p_clean it reached and whether it reached `tracing.noise_target_ratio` (the largest multiplier tried if not)."""
    res = tmp_path / "results"
    for model, modality, mult, ratio, reached in (("slm", "s2t", 8.0, 0.27, True), ("slm", "t2t", 3.0, 0.21, True),
                                                  ("big", "t2t", 20.0, 0.41, False)):
        (res / "noise" / model).mkdir(parents=True, exist_ok=True)
        (res / "noise" / model / f"{modality}.json").write_text(json.dumps(
            {"std": 0.1, "multiplier": mult, "scale": 0.1 * mult, "median_ratio": ratio, "reached": reached,
             "n_facts": 58, "n_traced_facts": 12}))
    table = collect(res)["tables"]["demo-noise"]
    rows = {(r[0], r[1]): dict(zip(table["columns"], r)) for r in table["rows"]}
    assert rows[("slm", "s2t")]["multiplier"] == "8" and rows[("slm", "s2t")]["median p_corrupted / p_clean"] == "0.27"
    assert rows[("slm", "t2t")]["target reached"] == "yes"
    assert rows[("big", "t2t")]["target reached"] == "no (largest tried)"
    assert rows[("big", "t2t")]["traced facts (multiplier)"] == "12" and rows[("big", "t2t")]["facts (std)"] == "58"
    assert "tracing.noise_target_ratio" in table["note"]


def test_sweep_and_seeds_tables_are_shown_when_run(tmp_path):
    """`make sweep` and `make seeds` write tables that README shows as they are (names kept, numbers 3 digits)."""
    res = tmp_path / "results"
    (res / "sweep").mkdir(parents=True)
    pd.DataFrame([{"name": "default", "seed": 1, "layers": 6, "steps": 800, "trainable_layers": None,
                   "align_weight": 0.0, "prefix_fraction": None, "speech_heard": 1.0, "carry_over": 0.03571,
                   "carry_over_n": 28, "chance_template_prior": 0.0, "chance_random_units": 0.0179,
                   "never_heard": 0.0}]).to_csv(res / "sweep" / "speechlm_sweep.tsv", sep="\t", index=False)
    tables = collect(res)["tables"]
    sweep = tables["demo-sweep"]
    assert sweep["columns"][:3] == ["name", "seed", "layers"]
    assert sweep["rows"][0][0] == "default" and sweep["rows"][0][sweep["columns"].index("carry_over")] == "0.0357"
    assert sweep["rows"][0][sweep["columns"].index("trainable_layers")] == "-"
    assert tables["demo-seeds"]["note"].startswith("Not in this run")


def test_demo_time_and_dtype_tables_and_own_target_tables_kept(tmp_path):
    """The demo's timing table comes from `factrace timings`' file; `make dtype-check`'s table from its TSV; a table
    of its own make target that a run lacks is kept from the previous summary, saying so, once."""
    res = tmp_path / "results"
    (res / "float32").mkdir(parents=True)
    (res / "timings.json").write_text(json.dumps({"elapsed_s": 500.0, "setup_s": 20.0, "stages": [
        {"stage": "trace", "jobs": 4, "job_seconds": 600.0, "longest_job_s": 300.0, "longest_rule": "trace",
         "max_rss_mb": 1200.0}, {"stage": "report", "jobs": 2, "job_seconds": 200.0, "longest_job_s": 150.0,
                                 "longest_rule": "report", "max_rss_mb": 100.0}]}))
    pd.DataFrame([{"model": "smollm2", "modality": "t2t", "fact_set": "all", "kind": "mlp", "dtype": "bfloat16",
                   "reference_dtype": "float32", "n_traced": 39, "n_reference": 40, "n_common": 38,
                   "max_aie_diff": 0.0041234567, "peak": "last subject @ layer 3", "reference_peak": "last subject @ layer 3",
                   "same_peak": True, "peak_gap": 0.0, "max_p_clean_diff": 0.0123, "within_tolerance": True,
                   "reason": ""}, {"model": "slm", "modality": "t2t", "dtype": "float32", "n_traced": 58,
                                  "n_reference": 0, "reason": "not traced in the reference run"}]
                 ).to_csv(res / "float32" / "dtype_compare.tsv", sep="\t", index=False)
    tables = collect(res, {"tables": {"demo-sweep": {"columns": ["name"], "rows": [["default"]], "sources": ["x"]}}}
                     )["tables"]
    t = tables["demo-timings"]
    assert [r[:4] for r in t["rows"]] == [["trace", "4", "600", "75%"], ["report", "2", "200", "25%"],
                                          ["all", "6", "800", ""]]
    assert "took 500 s on the clock; with the set-up of `.venv` (20 s) `make demo` took 8 min 40 s." in t["note"]
    d = tables["demo-dtype"]
    assert d["rows"][0][:5] == ["smollm2 t2t", "mlp", "bfloat16 vs float32", "38 (39 / 40)", "0.00412"]
    assert d["rows"][0][7] == "yes"
    assert d["rows"][1][:4] == ["slm t2t", "-", "float32 vs -", "- (58 / 0)"]  # integers, not 58.0, beside NaN
    assert d["rows"][1][-1] == "not traced in the reference run"
    kept = tables["demo-sweep"]
    assert kept["rows"] == [["default"]] and kept["note"].count("Kept from the previous summary") == 1
    again = collect(res, {"tables": tables})["tables"]["demo-sweep"]
    assert again == kept  # kept twice: one note, the same table
    assert collect(res)["tables"]["demo-seeds"]["note"].startswith("Not in this run")  # nothing before: nothing kept


def test_only_the_named_tables_are_re_made_and_the_others_kept_as_they_were(tmp_path):
    """`make numbers TABLES=demo-sweep` after `make sweep` alone: the sweep table from its file (arithmetic and
    subject-ablation columns included), every other table exactly as the summary had it."""
    res = tmp_path / "results"
    (res / "sweep").mkdir(parents=True)
    pd.DataFrame([{"name": "default", "seed": 1, "arithmetic": None, "carry_over": 0.0, "swap_followed_heard": 0.69},
                  {"name": "mkl-avx2", "seed": 1, "arithmetic": "mkl=AVX2", "carry_over": 0.0357,
                   "swap_followed_heard": 0.7586}]).to_csv(res / "sweep" / "speechlm_sweep.tsv", sep="\t", index=False)
    before = json.loads(SUMMARY.read_text())
    after = collect(res, before, only=["demo-sweep"])["tables"]
    assert {k: v for k, v in after.items() if k != "demo-sweep"} == {
        k: v for k, v in before["tables"].items() if k != "demo-sweep"}
    sweep = after["demo-sweep"]
    assert [r[sweep["columns"].index("arithmetic")] for r in sweep["rows"]] == ["-", "mkl=AVX2"]
    assert [r[sweep["columns"].index("swap_followed_heard")] for r in sweep["rows"]] == ["0.69", "0.759"]
    with pytest.raises(ValueError, match=r"no source for \['demo-seeds \(results/seeds/seeds.tsv\)'\]"):
        collect(res, before, only=["demo-seeds"])
    with pytest.raises(ValueError, match="no such table"):
        collect(res, before, only=["demo-nothing"])


def test_re_making_other_tables_keeps_figure2s_copies(tmp_path):
    """`make numbers TABLES=demo-timings`: the timing table is re-made, and the committed Figure 2 copies stay
    those of the run that made the Figure 2 table (a later run's figures are copied only with that table)."""
    import argparse

    from factrace.analysis.commands import cmd_summarize

    res, out = tmp_path / "results", tmp_path / "summary"
    (res / "figures").mkdir(parents=True)
    (res / "figures" / "figure2.png").write_bytes(b"a later run's figure")
    (res / "timings.json").write_text(json.dumps({"elapsed_s": 500.0, "setup_s": 20.0, "stages": []}))
    out.mkdir()
    (out / "summary.json").write_text(SUMMARY.read_text())
    (out / "figure2.png").write_bytes(b"the committed figure")
    args = argparse.Namespace(results=str(res), out=str(out), readme=None, tables=["demo-timings"])
    cmd_summarize(args)
    assert (out / "figure2.png").read_bytes() == b"the committed figure"
    assert "500 s on the clock" in json.loads((out / "summary.json").read_text())["tables"]["demo-timings"]["note"]
