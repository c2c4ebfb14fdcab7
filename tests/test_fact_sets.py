"""Issue 21.4: do facts learnt in text carry over to speech? A speech LM whose checkpoint's facts.parquet records
`speech_set` has its S->T facts split into `heard` and `text_only`: the trace tables record each fact's
`fact_set`, and every analysis table, Figure 2, the per-model heatmaps, the summary blocks and the landing page
key their rows by (model, modality, fact_set); a T->T vs S->T paired test runs on each set. Models without the
record behave as before (one row, fact_set `all`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from factrace.analysis.aie import _rng_for, aie_table, bootstrap_mean_ci, prompt_category_effects
from factrace.analysis.commands import compare_tables
from factrace.analysis.figures import heatmaps
from factrace.analysis.rows import split_rows
from factrace.analysis.stats import TEST_COLUMNS, paired_tests, sign_flip
from factrace.core import io
from factrace.speechlm.fact_sets import fact_sets
from test_comparison import speech_rows, text_rows
from test_resume import one_thread, run_cli  # noqa: F401
from test_speechlm import FACTS, _speech_tables, write_tiny_speech_lm


# ------------------------------------------------------------------------------------------------ fact_sets()
def _facts_parquet(d, speech_set=None):
    df = pd.DataFrame({"known_id": [10, 11, 500, 501], "set": ["traced", "traced", "extra", "carry"]})
    if speech_set is not None:
        df["speech_set"] = speech_set
    d.mkdir(parents=True, exist_ok=True)
    io.write_table(df, d / "facts.parquet", None)
    return d


def test_fact_sets_reads_the_checkpoints_speech_set(tmp_path):
    d = _facts_parquet(tmp_path / "split", ["heard", "text_only", "never_heard", "never_heard"])
    assert fact_sets(d) == {10: "heard", 11: "text_only"}  # never_heard rows are not traced: left out
    assert fact_sets(str(d)) == {10: "heard", 11: "text_only"}
    # the extra facts (trained on, never traced) are heard too: only the traced facts' sets are read
    d = _facts_parquet(tmp_path / "extra-heard", ["text_only", "heard", "heard", "heard"])
    assert fact_sets(d) == {10: "text_only", 11: "heard"}


def test_fact_sets_is_empty_without_the_file_or_the_column(tmp_path):
    assert fact_sets(tmp_path / "no-such-model") == {}
    assert fact_sets(tmp_path) == {}  # a checkpoint without facts.parquet (SmolLM2, SpiritLM)
    assert fact_sets(_facts_parquet(tmp_path / "backbone")) == {}  # facts.parquet without speech_set


def test_fact_sets_names_the_file_of_an_unknown_set(tmp_path):
    d = _facts_parquet(tmp_path / "bad", ["heard", "spoken", "never_heard", "never_heard"])
    with pytest.raises(ValueError, match=r"facts.parquet: known_id 11 has speech_set 'spoken'"):
        fact_sets(d)


# ------------------------------------------------------------------------------- the trace records fact_set
@pytest.fixture(scope="module")
def speech_lm_dir(tmp_path_factory):
    """A tiny offline-layout speech LM checkpoint (test_speechlm.py's, 2 layers) on disk, without facts.parquet."""
    d = tmp_path_factory.mktemp("speechlm-sets") / "model"
    tok = write_tiny_speech_lm(d, layers=2)
    return d, tok


def _trace_inputs(root, tok):
    """The shard's prompts (facts 10, 11: usable speech), an S->T filter keeping both, speech tables, noise."""
    from factrace.core.provenance import Provenance

    root.mkdir(parents=True, exist_ok=True)
    sp, tm, _units = _speech_tables(root)
    prompts = FACTS[FACTS["known_id"].isin([10, 11])]
    io.write_table(prompts, root / "prompts.parquet", "prompts", Provenance(stage="shard"))
    paris = tok.convert_tokens_to_ids("paris")
    filt = pd.DataFrame({"known_id": [10, 11], "model": "speechlm", "modality": "s2t", "generation": "paris",
                         "match": "exact", "kept": True, "target_token_id": [paris, paris],
                         "target_token": "paris", "reason": ""})
    io.write_table(filt, root / "filter.parquet", "filter", Provenance(stage="filter"))
    (root / "noise.json").write_text(json.dumps({"scale": 2.0}))
    return {"prompts": root / "prompts.parquet", "filter": root / "filter.parquet", "noise": root / "noise.json",
            "speech_tokens": sp, "token_map": tm}


def _trace_argv(model_dir, inputs, out):
    spec = json.dumps({"loader": "spiritlm", "path": str(model_dir), "n_layers": 2, "dtype": "float32",
                       "device": "cpu", "speech_input": "hubert"})
    return ["trace", "--model", "speechlm", "--model-spec", spec, "--modality", "s2t",
            "--kind-settings", json.dumps([["hidden", {"samples": 2, "seed": 1}]]),
            "--prompts", str(inputs["prompts"]), "--filter", str(inputs["filter"]), "--noise", str(inputs["noise"]),
            "--speech-tokens", str(inputs["speech_tokens"]), "--token-map", str(inputs["token_map"]),
            "--subject-margin", "0", "--engine", "fast", "--max-rows", "64", "--out", str(out)]


def test_s2t_trace_of_a_speech_lm_with_speech_set_writes_each_facts_set(
        speech_lm_dir, tmp_path, one_thread, capsys):  # noqa: F811
    src, tok = speech_lm_dir
    model = tmp_path / "model"
    shutil.copytree(src, model)
    inputs = _trace_inputs(tmp_path / "inputs", tok)
    out = tmp_path / "trace" / "hidden" / "shard-0000.parquet"
    # no facts.parquet: one set, `all`
    run_cli(_trace_argv(model, inputs, out))
    before = io.read_table(out, "trace")
    assert set(before["fact_set"]) == {"all"} and set(before["known_id"]) == {10, 11}
    # the build records the sets: the table is retraced (its weights did not change) and records them per fact
    _facts_parquet(model, ["heard", "text_only", "never_heard", "never_heard"])
    run_cli(_trace_argv(model, inputs, out))
    after = io.read_table(out, "trace")
    per_fact = after.groupby("known_id")["fact_set"].unique().map(list).to_dict()
    assert per_fact == {10: ["heard"], 11: ["text_only"]}
    assert list(after.columns[:4]) == ["known_id", "model", "modality", "fact_set"]
    np.testing.assert_allclose(after["p_restored"], before["p_restored"])  # the same trace, labelled
    # the column is described in the table's schema, and `factrace describe` prints it
    run_cli(["describe", str(out)])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == ["fact_set"])
    assert "heard" in line and "text_only" in line
    # a checkpoint whose sets leave out a traced fact was built on other facts: the job stops
    _facts_parquet(model, ["heard", "never_heard", "never_heard", "never_heard"])
    with pytest.raises(SystemExit, match=r"traced fact\(s\) \[11\] have no speech_set"):
        run_cli(_trace_argv(model, inputs, tmp_path / "other.parquet"))


def test_t2t_trace_of_a_speech_lm_with_speech_set_is_all(speech_lm_dir, tmp_path):
    from factrace.tracing.commands import trace_fact_sets

    src, _tok = speech_lm_dir
    d = _facts_parquet(tmp_path / "m", ["heard", "text_only", "never_heard", "never_heard"])
    assert trace_fact_sets(str(d), "t2t", [10, 11]) == {10: "all", 11: "all"}
    assert trace_fact_sets(str(d), "s2t", [10, 11]) == {10: "heard", 11: "text_only"}
    assert trace_fact_sets(str(src), "s2t", [10, 11]) == {10: "all", 11: "all"}  # no facts.parquet


# ----------------------------------------------------------------------------------- analysis rows by set
HEARD, TEXT_ONLY = (1, 2, 3), (4, 5)


def _traces(split: bool = True) -> pd.DataFrame:
    """A speech LM `slm` traced in T->T (facts 1..5) and S->T (facts 1..5: 1-3 heard, 4-5 text only, with a
    smaller effect), one layer, one kind."""
    parts = []
    for k in (*HEARD, *TEXT_ONLY):
        parts.append(text_rows(known_id=k, ies=(0.0, 0.3 + 0.01 * k, 0.1, 0.6)))
        s2t = speech_rows(known_id=k, marker_ie=0.9 if k in HEARD else 0.25)
        if split:
            s2t = s2t.assign(fact_set="heard" if k in HEARD else "text_only")
        parts.append(s2t)
    return pd.concat(parts, ignore_index=True)


ROWS = [["slm", "t2t", "Speech LM T->T"], ["slm", "s2t", "Speech LM S->T"]]


def test_analysis_splits_the_speech_lms_s2t_row_by_fact_set_with_each_n(tmp_path, monkeypatch):
    aie = aie_table(_traces(), combine="mean", n_boot=20)
    n = aie.groupby(["modality", "fact_set"])["n"].max().to_dict()
    assert n == {("s2t", "heard"): 3, ("s2t", "text_only"): 2, ("t2t", "all"): 5}
    pred = aie[aie["category"] == "prediction"].set_index(["modality", "fact_set"])["aie"]
    assert pred[("s2t", "heard")] == pytest.approx(0.9) and pred[("s2t", "text_only")] == pytest.approx(0.25)

    effects = prompt_category_effects(_traces(), combine="mean")
    tables = compare_tables(aie, effects, min_facts=2, n_perm=99, seed=0, exact_max_n=20)
    peaks = tables["peaks"].set_index(["modality", "fact_set"])
    assert sorted(peaks.index) == [("s2t", "heard"), ("s2t", "text_only"), ("t2t", "all")]  # both S->T rows
    assert peaks.loc[("s2t", "heard"), "peak_aie"] == pytest.approx(0.9)
    assert peaks.loc[("s2t", "text_only"), "ratio_of_grid_maxima"] == pytest.approx(
        peaks.loc[("s2t", "text_only"), "peak_aie"] / peaks.loc[("t2t", "all"), "peak_aie"])
    cats = tables["category_peaks"]
    assert set(zip(cats["modality"], cats["fact_set"])) == {("t2t", "all"), ("s2t", "heard"), ("s2t", "text_only")}
    ratios = tables["category_ratios"].set_index(["fact_set", "category"])
    assert ratios.loc[("text_only", "prediction"), ["n_t2t", "n_s2t"]].tolist() == [5, 2]
    assert ratios.loc[("heard", "prediction"), ["n_t2t", "n_s2t"]].tolist() == [5, 3]
    assert set(tables["tests"]["fact_set"]) | set(tables["tests_dropped"]["fact_set"]) == {"heard", "text_only"}

    # Figure 2 and its cell counts: two S->T rows, labelled with their n
    _paths, cells = heatmaps.figure2_with_counts(aie, ROWS, tmp_path / "figure2.png")
    labels = list(dict.fromkeys(cells["row"]))
    assert labels == ["Speech LM T->T", "Speech LM S->T, facts heard in speech (n=3)",
                      "Speech LM S->T, facts learnt in text only (n=2)"]
    assert list(dict.fromkeys(cells["fact_set"])) == ["all", "heard", "text_only"]

    # the per-model figure of the S->T trace draws the same two rows (one file per model and modality)
    drawn = []
    real = heatmaps.draw_grid

    def spy(*a, **kw):
        grid = real(*a, **kw)
        drawn.append(list(dict.fromkeys(grid.cells["row"])))
        return grid

    monkeypatch.setattr(heatmaps, "draw_grid", spy)
    written = heatmaps.aie_heatmaps(aie[aie["modality"] == "s2t"], tmp_path / "aie", labels={"slm": "Speech LM"})
    assert list(written) == [("slm", "s2t")]
    assert drawn == [[lab.replace("S->T", "S\u2192T") for lab in labels[1:]]]  # MODALITY_LABEL's arrow


def test_summary_and_landing_page_show_both_s2t_rows(tmp_path):
    from factrace.analysis.summary import collect
    from factrace.reporting.pages import figure_rows, headline_peaks, headline_tests

    aie = aie_table(_traces(), combine="mean", n_boot=20)
    tables = compare_tables(aie, prompt_category_effects(_traces(), combine="mean"), min_facts=2, n_perm=99,
                            seed=0, exact_max_n=20)
    res = tmp_path / "results"
    (res / "compare").mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(res / "compare" / f"{name}.csv", index=False)
    (res / "aie" / "slm").mkdir(parents=True)
    aie[aie["modality"] == "s2t"].to_parquet(res / "aie" / "slm" / "s2t.parquet")
    (res / "filter" / "slm" / "s2t").mkdir(parents=True)
    pd.DataFrame({"known_id": range(6), "kept": [True] * 5 + [False], "match": ["exact"] * 5 + ["none"]}).to_parquet(
        res / "filter" / "slm" / "s2t" / "shard-0000.parquet")
    t = collect(res)["tables"]
    peaks = [r[:3] for r in t["demo-peaks"]["rows"]]
    assert ["slm", "s2t: facts heard in speech", "hidden"] in peaks
    assert ["slm", "s2t: facts learnt in text only", "hidden"] in peaks and ["slm", "t2t", "hidden"] in peaks
    cat = {tuple(r[1:3]): r[3] for r in t["demo-categories"]["rows"]}
    assert cat[("s2t: facts heard in speech", "prediction")] == "3"
    assert cat[("s2t: facts learnt in text only", "prediction")] == "2"
    assert {r[0] for r in t["demo-ratios"]["rows"]} == {"slm, S->T facts heard in speech",
                                                       "slm, S->T facts learnt in text only"}
    assert t["demo-facts"]["rows"][0][-1] == "5 (facts heard in speech 3, facts learnt in text only 2)"
    assert any(r[0].startswith("S->T facts learnt in text only: tests kept") for r in t["demo-tests"]["rows"])

    # the landing page: the rows with their n (facts traced, from the QC fates' fact_set) and their meaning
    fates = pd.DataFrame({"model": "slm", "modality": ["t2t"] * 5 + ["s2t"] * 6,
                          "fact_set": ["all"] * 5 + ["heard"] * 3 + ["text_only"] * 2 + [""],
                          "fate": ["traced"] * 10 + ["dropped"]})
    rows = figure_rows([[*r, "speechlm"] for r in ROWS], fates)
    assert [(r.fact_set, r.label, r.n_facts) for r in rows] == [
        ("all", "Speech LM T->T", 5), ("heard", "Speech LM S->T, facts heard in speech (n=3)", 3),
        ("text_only", "Speech LM S->T, facts learnt in text only (n=2)", 2)]
    assert "carry over to speech" in rows[2].meaning
    head = headline_peaks(tables["peaks"], rows)
    assert head["row of Figure 2"].tolist() == [r.label for r in rows] and (head["hidden states"] != "").all()
    assert set(headline_tests(tables["tests"])["model"]) <= {"slm, S->T facts heard in speech",
                                                              "slm, S->T facts learnt in text only"}


def test_qc_counts_traced_facts_per_set():
    from factrace.analysis.qc import fact_fates, qc_table

    prompts = pd.DataFrame({"known_id": [1, 2, 3], "subject": "x", "shard": 0})
    filters = pd.DataFrame({"known_id": [1, 2, 3], "model": "slm", "modality": "s2t", "kept": [True, True, False],
                            "match": "exact", "generation": "g", "reason": ["", "", "no match"]})
    traced = pd.DataFrame({"known_id": [1, 2], "model": "slm", "modality": "s2t", "fact_set": ["heard", "text_only"]})
    fates = fact_fates(prompts, filters, traced, {})
    assert fates.set_index("known_id")["fact_set"].to_dict() == {1: "heard", 2: "text_only", 3: ""}
    qc = qc_table(prompts, filters, traced, fates)
    got = qc[qc["stage"] == "trace"].set_index("status")["n_facts"].to_dict()
    assert got == {"traced": 2, "traced (heard)": 1, "traced (text_only)": 1}
    # without sets: `all`, and no per-set rows
    fates = fact_fates(prompts, filters, traced.drop(columns="fact_set"), {})
    assert set(fates["fact_set"]) == {"all"}
    assert not qc_table(prompts, filters, traced.drop(columns="fact_set"), fates)["status"].str.contains(r"\(").any()


def test_qc_gives_dropped_s2t_facts_the_set_the_checkpoint_records(tmp_path):
    """`factrace qc --fact-sets MODEL=DIR`: a fact the S->T filter dropped has its set too, so that QC counts
    how many facts learnt in text only the speech LM answers from speech; T->T stays `all`."""
    from factrace.core.provenance import Provenance
    from test_qc import NO_MATCH, filt, prompts

    p = prompts([10, 11, 500])
    f = pd.concat([filt("lm", "s2t", [(10, True, "Rome", ""), (11, False, "Paris", NO_MATCH),
                                      (500, False, "", NO_MATCH)]),
                   filt("lm", "t2t", [(10, True, "Rome", ""), (11, True, "Rome", ""), (500, True, "Rome", "")])])
    io.write_table(p, tmp_path / "prompts.parquet", "prompts")
    io.write_table(f, tmp_path / "filter.parquet", "filter")
    tr = pd.concat([text_rows(known_id=10, model="lm"), speech_rows(known_id=10).assign(model="lm", fact_set="heard")])
    io.write_table(tr, tmp_path / "trace.parquet", "trace", Provenance(stage="trace"))
    model = _facts_parquet(tmp_path / "model", ["heard", "text_only", "never_heard", "never_heard"])
    run_cli(["qc", "--prompts", str(tmp_path / "prompts.parquet"), "--filters", str(tmp_path / "filter.parquet"),
             "--traces", str(tmp_path / "trace.parquet"), "--fact-sets", f"lm={model}",
             "--out", str(tmp_path / "qc.tsv"), "--fates", str(tmp_path / "fates.parquet")])
    fates = io.read_table(tmp_path / "fates.parquet").set_index(["modality", "known_id"])
    assert fates.loc[("s2t", 10), ["fate", "fact_set"]].tolist() == ["traced", "heard"]
    assert fates.loc[("s2t", 11), ["fate", "fact_set"]].tolist() == ["dropped", "text_only"]
    assert fates.loc[("s2t", 500), "fact_set"] == ""  # not a traced fact of the build: no set
    assert set(fates.loc["t2t", "fact_set"]) == {"all"}
    qc = pd.read_csv(tmp_path / "qc.tsv", sep="\t")
    statuses = set(qc.loc[(qc["stage"] == "fate") & (qc["modality"] == "s2t"), "status"])
    assert {"traced (heard)", "dropped (text_only)"} <= statuses


def test_a_model_without_sets_is_unchanged():
    """No split: one row per (model, modality), fact_set `all`, the bootstrap draws and Monte Carlo seeds of
    before the column existed, the planned labels, and the old columns in their order."""
    traces = _traces(split=False)
    assert "fact_set" not in traces.columns
    aie = aie_table(traces, combine="mean", n_boot=50, seed=3)
    assert set(aie["fact_set"]) == {"all"}
    assert [c for c in aie.columns if c not in ("fact_set", "window")] == [
        "model", "modality", "kind", "layer", "category", "aie", "ci_low", "ci_high", "n", "same_cells_as"]
    # the CI of each group comes from the generator of (model, modality, kind, category), as before
    eff = prompt_category_effects(traces, combine="mean")
    g = eff[(eff["modality"] == "t2t") & (eff["category"] == "last subject")]  # effects that differ by fact
    mat = g.pivot_table(index="known_id", columns="layer", values="ie")
    _m, lo, hi, _n = bootstrap_mean_ci(mat.to_numpy(), 50, seed=_rng_for(3, ("slm", "t2t", "hidden", "last subject")))
    row = aie[(aie["modality"] == "t2t") & (aie["category"] == "last subject")].iloc[0]
    assert lo[0] < hi[0] and (row["ci_low"], row["ci_high"]) == (lo[0], hi[0])
    assert split_rows(ROWS, {("slm", "s2t"): {"all": 5}})[1].label == "Speech LM S->T"
    tables = compare_tables(aie, eff, min_facts=2, n_perm=999, seed=0, exact_max_n=1)
    assert len(tables["peaks"]) == 2 and set(tables["peaks"]["fact_set"]) == {"all"}
    assert set(tables["category_ratios"]["fact_set"]) == {"all"}
    # a Monte Carlo test (exact_max_n=1) draws from the seed of (model, kind, category, band), as before
    import zlib

    tests = tables["tests"]
    assert (tests["fact_set"] == "all").all() and (tests["method"] == "monte carlo").all() and len(tests) >= 3
    for t in tests.itertuples():
        per = eff[(eff["kind"] == t.kind) & (eff["category"] == t.category)].groupby(["modality", "known_id"])["ie"]
        d = (per.mean()["t2t"] - per.mean()["s2t"]).to_numpy()
        key = repr((t.model, t.kind, t.category, t.band))
        again = sign_flip(d, n_perm=999, seed=np.random.default_rng([0, zlib.crc32(key.encode())]), exact_max_n=1)
        assert t.p_value == again.p_value, t


# ------------------------------------------------------------------------------------ the new paired test
def _effects(rows: list[tuple[int, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"known_id": k, "model": "slm", "modality": mod, "fact_set": fs, "kind": "hidden",
                          "layer": 0, "category": "last subject", "ie": ie} for k, mod, fs, ie in rows])


def test_paired_test_on_the_text_only_facts_that_pass_both_filters():
    """T->T vs S->T per fact on each S->T set. Text-only facts 3, 4, 5 are traced in both modalities (6 only in
    S->T: dropped by the T->T filter); d = (0.4, 0.2, 0.1): of the 2^3 sign vectors, |sum| >= 0.7 for (+++) and
    (---): p = 2/8. Heard facts 1, 2: d = (0.2, -0.1), |sum| = 0.1 is the smallest: p = 1. Holm over both:
    0.25 * 2 = 0.5, max(0.5, 1 * 1) = 1."""
    eff = _effects([
        (1, "t2t", "all", 0.5), (2, "t2t", "all", 0.5), (3, "t2t", "all", 0.6), (4, "t2t", "all", 0.5),
        (5, "t2t", "all", 0.3), (7, "t2t", "all", 0.9),
        (1, "s2t", "heard", 0.3), (2, "s2t", "heard", 0.6),
        (3, "s2t", "text_only", 0.2), (4, "s2t", "text_only", 0.3), (5, "s2t", "text_only", 0.2),
        (6, "s2t", "text_only", 0.0),
    ])
    res = paired_tests(eff, bands={"all": (0, 0)}, n_perm=10, exact_max_n=20)
    t = res.tests.set_index("fact_set")
    assert list(res.tests.columns) == TEST_COLUMNS and list(t.index) == ["heard", "text_only"]
    text = t.loc["text_only"]
    assert (text["n"], text["method"], text["n_perm"]) == (3, "exact", 8)
    assert text["mean_a"] == pytest.approx(1.4 / 3) and text["mean_b"] == pytest.approx(0.7 / 3)
    assert text["mean_diff"] == pytest.approx(0.7 / 3)
    assert text["p_value"] == pytest.approx(0.25) and text["p_holm"] == pytest.approx(0.5)
    heard = t.loc["heard"]
    assert heard["n"] == 2 and heard["p_value"] == pytest.approx(1.0) and heard["p_holm"] == pytest.approx(1.0)
    assert res.dropped.empty
