"""Tests of factrace.analysis: AIE, speech collapse, bootstrap, permutation tests, Holm, figures."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from factrace.analysis.aie import (
    aie_table,
    bootstrap_mean_ci,
    category_masks,
    collapse_speech_positions,
    log_aie,
    prompt_category_effects,
)
from factrace.analysis.peaks import peak_effects
from factrace.analysis.stats import holm, layer_bands, paired_tests, sign_flip_test
from factrace.core.contracts import violations
from factrace.tracing.categories import AIE_CATEGORIES, CATEGORIES, categories_of, primary_category
from scipy import stats as sps


def _rows(known_id, n_tokens, s, e, p_corr, restored, *, kind="hidden", layer=0, model="m", modality="t2t"):
    return [
        {"known_id": known_id, "model": model, "modality": modality, "kind": kind, "layer": layer, "position": pos,
             "category": primary_category(pos, s, e, n_tokens), "text_token_index": pos, "p_clean": 0.9,
             "p_corrupted": p_corr, "p_restored": p_corr + ie, "noise_scale": 0.3, "samples": 10, "window": 10, "seed": 0,
             "subject_start": s, "subject_end": e, "n_tokens": n_tokens}
        for pos, ie in enumerate(restored)
    ]


def tiny_trace() -> pd.DataFrame:
    # prompt 1: one-token subject at position 1 -> first AND last subject; IE per position below
    a = _rows(1, 5, 1, 2, 0.1, [0.0, 0.4, 0.1, 0.2, 0.5])
    # prompt 2: subject [0, 4) -> two middle subject tokens (IE 0.2, 0.4 -> prompt value 0.3)
    b = _rows(2, 7, 0, 4, 0.2, [0.1, 0.2, 0.4, 0.4, 0.1, 0.3, 0.7])
    return pd.DataFrame(a + b)


EXPECTED = {
    "first subject": (0.25, 2), "middle subject": (0.3, 1), "last subject": (0.4, 2),
    "first subsequent": (0.1, 2), "further tokens": (0.25, 2), "last token": (0.6, 2), "prediction": (0.6, 2),
}


def test_category_masks_match_categories_of():
    combos = [(p, s, e, n) for n in range(1, 8) for s in range(n) for e in range(s + 1, n + 1) for p in range(n)]
    p, s, e, n = (np.array(x) for x in zip(*combos))
    masks = category_masks(p, s, e, n)
    for i, combo in enumerate(combos):
        assert {c for c in CATEGORIES if masks[c][i]} == set(categories_of(*combo)), combo


def test_aie_known_answer_with_one_token_subject():
    out = aie_table(tiny_trace(), combine="mean", n_boot=200, seed=1)
    assert violations(out, "aie") == []
    got = out.set_index("category")
    assert list(out["category"]) == list(AIE_CATEGORIES)  # ROME order, then the prediction position
    # text: the prediction position is the last token; the table says that they are the same cells
    assert got.loc["prediction", "same_cells_as"] == "last token"
    assert got.loc["last token", "same_cells_as"] == "prediction"
    assert (got.drop(index=["prediction", "last token"])["same_cells_as"] == "").all()
    for cat, (aie, n) in EXPECTED.items():
        assert got.loc[cat, "aie"] == pytest.approx(aie), cat
        assert got.loc[cat, "n"] == n, cat
        assert got.loc[cat, "ci_low"] - 1e-12 <= got.loc[cat, "aie"] <= got.loc[cat, "ci_high"] + 1e-12
    # one prompt -> zero-width CI
    assert got.loc["middle subject", "ci_low"] == pytest.approx(0.3)
    assert got.loc["middle subject", "ci_high"] == pytest.approx(0.3)


def test_aie_is_seeded_and_groups_independent():
    tr = tiny_trace()
    more = tr.assign(kind="mlp", p_restored=tr["p_restored"] * 0.5)
    a = aie_table(tr, combine="mean", n_boot=100, seed=3)
    b = aie_table(pd.concat([more, tr]), combine="mean", n_boot=100, seed=3)
    b = b[b["kind"] == "hidden"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_log_aie_floor():
    np.testing.assert_allclose(log_aie(np.array([0.1, 0.0, -0.2, 1e-5])), [-1, -4, -4, -4])
    assert np.isnan(log_aie(np.nan))
    s = log_aie(pd.Series([0.01], name="aie"))
    assert isinstance(s, pd.Series) and s.iloc[0] == pytest.approx(-2)


def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 2000):
        x = rng.normal(1.0, 1.0, size=n)
        mean, lo, hi, cnt = bootstrap_mean_ci(x, n_boot=500, seed=1)
        assert cnt[0] == n
        assert lo[0] < mean[0] < hi[0]
        assert mean[0] == pytest.approx(x.mean())
        widths.append(hi[0] - lo[0])
        assert widths[-1] == pytest.approx(2 * 1.96 / np.sqrt(n), rel=0.3)
    assert widths[1] < widths[0] / 5


def test_bootstrap_handles_missing_columns():
    x = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    mean, lo, hi, n = bootstrap_mean_ci(x, n_boot=50, seed=0)
    np.testing.assert_allclose(mean[:2], [2.0, 2.0])
    assert list(n) == [2, 1, 0]
    assert np.isnan(mean[2]) and np.isnan(lo[2])
    assert lo[1] == hi[1] == 2.0


def speech_trace(modality: str = "s2t") -> pd.DataFrame:
    # 8 speech positions realising 3 text tokens; subject = text token 1; -1 = silence; the last position is
    # the [Text] marker, which the trace stage assigns to the last text token (text_marker="last")
    tti = [-1, 0, 0, 1, 1, 1, 2, 2]
    ie = [0.9, 0.1, 0.3, 0.2, 0.4, 0.6, 0.5, 0.9]
    rows = []
    for pos, (t, v) in enumerate(zip(tti, ie)):
        rows.append({"known_id": 7, "model": "slm", "modality": modality, "kind": "hidden", "layer": 2, "position": pos,
                         "category": "?", "text_token_index": t, "p_clean": 0.8, "p_corrupted": 0.05, "p_restored": 0.05 + v,
                         "noise_scale": 0.3, "samples": 10, "window": 10, "seed": 0, "subject_start": 3, "subject_end": 6,
                         "n_tokens": 8, "text_subject_start": 1, "text_subject_end": 2, "n_text_tokens": 3})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("combine, expected", [
    ("mean", [0.2, 0.4, 0.5]), ("max", [0.3, 0.6, 0.5]), ("sum", [0.4, 1.2, 0.5]),
])
def test_collapse_speech_positions(combine, expected):
    out = collapse_speech_positions(speech_trace(), combine).sort_values("position")
    assert list(out["position"]) == [0, 1, 2, 3]  # 3: the prediction position, after the last word
    np.testing.assert_allclose(out["ie"], [*expected, 0.9])
    np.testing.assert_allclose(out["p_restored"] - out["p_corrupted"], [*expected, 0.9])
    assert list(out["n_speech_tokens"]) == [2, 3, 1, 1]
    assert list(out["category"]) == ["before subject", "last subject", "last token", "prediction"]
    assert list(out["is_prediction"]) == [False, False, False, True]
    assert (out["subject_start"] == 1).all() and (out["subject_end"] == 2).all() and (out["n_tokens"] == 3).all()
    # aggregation in text-token units: text token 1 is first AND last subject, token 2 first subsequent+last
    aie = aie_table(speech_trace(), combine=combine, n_boot=10).set_index("category")["aie"]
    assert aie["first subject"] == pytest.approx(expected[1])
    assert aie["last subject"] == pytest.approx(expected[1])
    assert aie["last token"] == pytest.approx(expected[2])
    assert aie["first subsequent"] == pytest.approx(expected[2])
    assert aie["prediction"] == pytest.approx(0.9)
    assert "middle subject" not in aie.index


def test_collapse_leaves_text_rows_alone_and_rejects_bad_rule():
    tr = tiny_trace()
    out = collapse_speech_positions(pd.concat([tr, speech_trace()], ignore_index=True), "mean")
    assert len(out[out["modality"] == "t2t"]) == len(tr)
    assert len(out[out["modality"] == "s2t"]) == 4
    with pytest.raises(ValueError):
        collapse_speech_positions(tr, "median")  # type: ignore[arg-type]


def test_sign_flip_uniform_under_null_and_small_under_shift():
    rng = np.random.default_rng(42)
    ps = []
    for _ in range(200):
        base = rng.normal(size=25)
        a = base + rng.laplace(scale=0.5, size=25)
        b = base + rng.laplace(scale=0.5, size=25)
        ps.append(sign_flip_test(a - b, n_perm=499, seed=rng, exact_max_n=20))
    ps = np.array(ps)
    assert sps.kstest(ps, "uniform").pvalue > 0.01
    frac = (ps < 0.05).mean()
    bound = 3 * np.sqrt(0.05 * 0.95 / 200)
    assert abs(frac - 0.05) < bound
    d = rng.normal(1.0, 1.0, size=25)
    assert sign_flip_test(d, n_perm=499, seed=0, exact_max_n=20) == pytest.approx(1 / 500)
    assert sign_flip_test(np.zeros(10), n_perm=99, seed=0, exact_max_n=20) == 1.0
    assert np.isnan(sign_flip_test(np.array([]), n_perm=10, exact_max_n=20))


def test_holm_hand_computed():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    out = holm([0.5, np.nan, 0.02])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.5, 0.04])
    assert holm([0.6, 0.7])[1] == 1.0 or holm([0.6, 0.7])[1] == pytest.approx(1.0)


def test_layer_bands():
    assert layer_bands(range(12)) == {"early": (0, 3), "middle": (4, 7), "late": (8, 11)}
    assert layer_bands([0, 1], n_bands=3) == {"band1": (0, 0), "band2": (1, 1)}


def _effects(rng, shift_band_layers=(6, 7, 8)):
    rows = []
    for kid, layer, cat in itertools.product(range(30), range(9), ("last subject", "last token")):
        base = rng.normal(0.1, 0.05)
        for mod in ("t2t", "s2t"):
            ie = base + rng.normal(0, 0.02)
            if mod == "t2t" and cat == "last token" and layer in shift_band_layers:
                ie += 0.2
            rows.append({"known_id": kid, "model": "slm", "modality": mod, "kind": "mlp", "layer": layer, "category": cat,
                             "ie": ie})
    # a fact kept only in text must not enter the paired test
    rows.append({"known_id": 99, "model": "slm", "modality": "t2t", "kind": "mlp", "layer": 0, "category": "last token", "ie": 5})
    # a model traced in one modality only is skipped
    rows.append({"known_id": 1, "model": "backbone", "modality": "t2t", "kind": "mlp", "layer": 0, "category": "last token",
                     "ie": 0.3})
    return pd.DataFrame(rows)


def test_paired_permutation_tests_table():
    res = paired_tests(_effects(np.random.default_rng(0)), n_perm=999, seed=0, exact_max_n=20).tests
    assert set(res["model"]) == {"slm"}
    assert len(res) == 2 * 3
    assert (res["n"] == 30).all()
    late = res[(res["category"] == "last token") & (res["band"] == "late")].iloc[0]
    assert late["p_value"] == pytest.approx(1 / 1000) and late["reject"]
    assert late["mean_diff"] == pytest.approx(0.2, abs=0.02)
    others = res.drop(index=late.name)
    assert (others["p_holm"] >= others["p_value"]).all()
    assert not others["reject"].any()
    again = paired_tests(_effects(np.random.default_rng(0)), n_perm=999, seed=0, exact_max_n=20).tests
    pd.testing.assert_frame_equal(res, again)


def synthetic_aie(drop_middle: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for model, modality, scale in (("backbone", "t2t", 0.2), ("slm", "t2t", 0.18), ("slm", "s2t", 0.01)):
        for kind, layer, cat in itertools.product(("hidden", "mlp", "attn"), range(8), CATEGORIES):
            if drop_middle and modality == "s2t" and cat == "middle subject":
                continue
            a = scale * rng.uniform(-0.1, 1)
            rows.append({"model": model, "modality": modality, "kind": kind, "layer": layer, "category": cat, "aie": a,
                             "ci_low": a - 0.01, "ci_high": a + 0.01, "n": 12})
    return pd.DataFrame(rows)


def test_peak_effects():
    aie = synthetic_aie()
    aie.loc[(aie["model"] == "slm") & (aie["modality"] == "t2t") & (aie["kind"] == "mlp")
            & (aie["layer"] == 3) & (aie["category"] == "last subject"), "aie"] = 0.5
    aie.loc[(aie["model"] == "slm") & (aie["modality"] == "s2t") & (aie["kind"] == "mlp")
            & (aie["layer"] == 5) & (aie["category"] == "first subject"), "aie"] = 0.05
    pk = peak_effects(aie).set_index(["model", "modality", "kind"])
    assert len(pk) == 9
    row = pk.loc[("slm", "t2t", "mlp")]
    assert (row["peak_aie"], row["peak_layer"], row["peak_category"]) == (0.5, 3, "last subject")
    assert pk.loc[("slm", "s2t", "mlp"), "ratio_of_grid_maxima"] == pytest.approx(0.1)
    assert pk.loc[("slm", "t2t", "mlp"), "ratio_of_grid_maxima"] == pytest.approx(1.0)
    assert pk.loc[("slm", "s2t", "mlp"), "reference_peak_category"] == "last subject"


def _assert_written(paths):
    assert len(paths) == 2
    assert {p.suffix for p in paths} == {".png", ".pdf"}
    for p in paths:
        assert p.exists() and p.stat().st_size > 0


def test_figures_write_png_and_pdf(tmp_path):
    from factrace.analysis.figures import speech as speech_figures
    from factrace.analysis.figures import traces as figures

    aie = synthetic_aie()
    aie = aie[~((aie["modality"] == "s2t") & (aie["kind"] == "attn"))]  # a kind with no data at all
    res = figures.aie_heatmaps(aie[aie["model"] == "slm"], tmp_path / "heat")
    assert set(res) == {("slm", "t2t"), ("slm", "s2t")}
    for paths in res.values():
        _assert_written(paths)
    _assert_written(figures.figure2_grid(
        aie, [("backbone", "t2t", "Backbone T\u2192T"), ("slm", "s2t", "SLM S\u2192T"),
              ("missing", "s2t", "nothing")], tmp_path / "fig2.png"))

    one = tiny_trace()
    one = one[one["known_id"] == 2]
    one = pd.concat([one.assign(layer=L, kind=k, p_restored=one["p_restored"] * (1 + 0.1 * L))
                     for L in range(4) for k in ("hidden", "mlp")])  # attn missing -> "no data" panel
    _assert_written(figures.prompt_trace_plot(one, ["The", "Eiffel", "Tower", "is", "in", "the", "city"],
                                              tmp_path / "prompt", combine="mean"))
    sp = speech_trace()
    _assert_written(figures.prompt_trace_plot(sp, ["Paris", "is", "in"], tmp_path / "prompt_s2t", combine="mean"))

    rng = np.random.default_rng(0)
    gap = pd.DataFrame([
        {"known_id": k, "layer": L, "position": pos, "cosine": 0.2 + 0.05 * L + rng.normal(0, 0.05),
             "euclidean": 50 - L + rng.normal(0, 2)}
        for k in range(10) for L in range(6) for pos in ("last subject", "last token")
    ])
    _assert_written(figures.modality_gap_plot(gap, tmp_path / "gap", n_boot=100))
    _assert_written(figures.modality_gap_plot(gap.iloc[0:0], tmp_path / "gap_empty"))

    asr = pd.DataFrame({"known_id": range(40), "reference": "a b", "hypothesis": "a c",
                            "wer": np.clip(rng.exponential(0.2, 40), 0, 1.5), "model": "tiny.en"})
    _assert_written(speech_figures.wer_histogram(asr, tmp_path / "wer"))
    _assert_written(speech_figures.wer_histogram(asr.iloc[0:0], tmp_path / "wer_empty"))


def test_heatmaps_share_one_colour_scale_per_kind_with_figure2(tmp_path):
    """Per-model figures: the model's label in the titles, and each kind's colour limits those of Figure 2 (over
    every model and modality), not each panel's own range."""
    from factrace.analysis.figures import heatmaps

    aie = synthetic_aie()
    rows = [("backbone", "t2t", "B T->T"), ("slm", "t2t", "S T->T"), ("slm", "s2t", "S S->T")]
    fig2 = heatmaps.draw_grid(aie, rows, tmp_path / "fig2")
    for kind in ("hidden", "mlp", "attn"):  # Figure 2: one scale down each column
        assert len({fig2.norms[(i, kind)] for i in range(3)}) == 1
    assert fig2.norms[(0, "hidden")] == pytest.approx(heatmaps.kind_limits(aie, rows)["hidden"])
    s2t = aie[(aie["model"] == "slm") & (aie["modality"] == "s2t")]
    alone = heatmaps.draw_grid(s2t, [("slm", "s2t", "S S->T")], tmp_path / "alone")
    shared = heatmaps.draw_grid(s2t, [("slm", "s2t", "Speech LM S->T")], tmp_path / "shared", scale_df=aie)
    for kind in ("hidden", "mlp", "attn"):
        assert shared.norms[(0, kind)] == pytest.approx(fig2.norms[(0, kind)])
    assert alone.norms[(0, "hidden")] != pytest.approx(fig2.norms[(0, "hidden")])  # the scale s2t alone would get
    out = heatmaps.aie_heatmaps(s2t, tmp_path / "aie", labels={"slm": "Speech LM"}, scale_df=aie)
    _assert_written(out[("slm", "s2t")])


def test_figure2_titles_state_each_models_window(tmp_path):
    """Issue 21 (1): the mlp and attention panels say which window the traces restored ("window W of L layers",
    from the AIE table's `window`); the hidden panels restore one layer and say nothing."""
    from factrace.analysis.figures import heatmaps

    aie = synthetic_aie()
    aie["window"] = np.where(aie["kind"] == "hidden", 1, np.where(aie["model"] == "backbone", 2, 3))
    rows = [("backbone", "t2t", "B T->T"), ("slm", "s2t", "S S->T")]
    titles = heatmaps.draw_grid(aie, rows, tmp_path / "fig2").titles
    assert titles[(0, "mlp")] == "B T->T: MLP (window 2 of 8 layers)"
    assert titles[(1, "attn")] == "S S->T: Attention (window 3 of 8 layers)"
    assert titles[(0, "hidden")] == "B T->T: Hidden states"


def test_gap_plot_has_integer_layer_ticks_a_labelled_band_and_n(tmp_path):
    from factrace.analysis.figures import traces as figures

    rng = np.random.default_rng(0)
    gap = pd.DataFrame([
        {"known_id": k, "layer": L, "position": pos, "cosine": 0.2 + 0.05 * L + rng.normal(0, 0.05),
         "euclidean": 50 - L + rng.normal(0, 2)}
        for k in range(10) for L in range(4) for pos in ("last subject", "last token")
    ])
    drawn = figures.draw_modality_gap(gap, tmp_path / "gap", n_boot=100, label="Speech LM")
    _assert_written(drawn.paths)
    for ticks in drawn.xticks:
        assert ticks == [0.0, 1.0, 2.0, 3.0]
    assert "Speech LM" in drawn.title and "n = 10 facts" in drawn.title
    assert any("bootstrap 95% CI over facts" in t for t in drawn.legend)


def test_prompt_plot_title_and_marks(tmp_path):
    """A per-prompt plot is titled with its prompt, answer and p_clean; '*' marks subject tokens only and, in
    speech, '+' the corrupted margin around them, as the caption says."""
    from factrace.analysis.figures import traces as figures

    one = tiny_trace()
    one = one[one["known_id"] == 2]
    facts = figures.prompt_facts(
        pd.DataFrame({"known_id": [2], "prompt": ["The Eiffel Tower is in the city"], "attribute": ["Paris"]}),
        pd.DataFrame({"known_id": [2], "target_token": ["\u0120Par"]}))
    drawn = figures.draw_prompt_trace(one, ["The", "Eiffel", "Tower", "is", "in", "the", "city"], tmp_path / "p",
                                      combine="mean", prompt=facts.loc[2, "prompt"], answer=facts.loc[2, "attribute"],
                                      target_token=facts.loc[2, "target_token"])
    _assert_written(drawn.paths)
    p_clean = float(one["p_clean"].iloc[0])
    assert "The Eiffel Tower is in the city" in drawn.title and "Paris" in drawn.title
    assert "\u201cPar\u201d" in drawn.title and f"p_clean = {p_clean:.3f}" in drawn.title
    s, e = int(one["subject_start"].iloc[0]), int(one["subject_end"].iloc[0])
    assert [i for i, lab in enumerate(drawn.labels) if lab.endswith("*")] == list(range(s, e))
    assert not any(lab.endswith("+") for lab in drawn.labels)

    sp = speech_trace().assign(subject_start=2, subject_end=7)  # one speech token of margin on each side
    pos = sp.drop_duplicates("position").sort_values("position")
    drawn = figures.draw_prompt_trace(sp, [f"[Hu{i}]" for i in range(len(pos))], tmp_path / "s", combine="mean",
                                      prompt="Paris is in")
    assert "Paris is in" in drawn.title and "(spoken)" in drawn.title
    ts, te = int(sp["text_subject_start"].iloc[0]), int(sp["text_subject_end"].iloc[0])
    cs, ce = int(sp["subject_start"].iloc[0]), int(sp["subject_end"].iloc[0])
    tti = pos.set_index("position")["text_token_index"]
    for i, lab in enumerate(drawn.labels):
        subject = ts <= int(tti.get(i, -1)) < te
        assert lab.endswith("*") == subject, (i, lab)
        assert lab.endswith("+") == (cs <= i < ce and not subject), (i, lab)
    assert [lab[-1] for lab in drawn.labels[2:7]] == ["+", "*", "*", "*", "+"]


def test_prompt_category_effects_columns():
    eff = prompt_category_effects(tiny_trace(), "mean")
    assert list(eff.columns) == ["known_id", "model", "modality", "fact_set", "kind", "layer", "category", "ie",
                                 "n_positions"]
    assert set(eff["fact_set"]) == {"all"}  # a trace table without the column: every fact `all`
    mid = eff[(eff["known_id"] == 2) & (eff["category"] == "middle subject")].iloc[0]
    assert mid["ie"] == pytest.approx(0.3) and mid["n_positions"] == 2
