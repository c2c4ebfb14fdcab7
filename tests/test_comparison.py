"""Issue 10: the T->T vs S->T comparison measures what it says (categories, min_facts, exact tests, figure
counts, articles in the target, ROME's noise std, streamed effects)."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_model
from factrace.analysis.aie import aie_table, prompt_category_effects
from factrace.analysis.figures.heatmaps import figure2_with_counts
from factrace.analysis.peaks import category_ratios, peak_effects
from factrace.analysis.stats import holm, paired_tests, sign_flip
from factrace.analysis.stream import effects_from_traces
from factrace.filtering.generate import target_token, traced_attribute
from factrace.speechlm.inputs import TraceInputs
from factrace.tracing.categories import AIE_CATEGORIES, primary_category
from factrace.tracing.scale import noise_scale, rome_embedding_std


# ------------------------------------------------------------------------------------------ 1. categories
def speech_rows(known_id=7, marker_ie=0.9, last_word=(0.1, 0.3), modality="s2t", layer=0, kind="hidden"):
    """A speech prompt of 3 words (text tokens 0..2, subject = token 1): speech positions
    [BOS] [Speech] w0 w0 w1 w1 w2 w2 [Text]; the trace stage gives the [Text] marker the last text token."""
    tti = [-1, -1, 0, 0, 1, 1, 2, 2, 2]
    ie = [0.0, 0.0, 0.05, 0.05, 0.2, 0.4, last_word[0], last_word[1], marker_ie]
    return pd.DataFrame([{
        "known_id": known_id, "model": "slm", "modality": modality, "kind": kind, "layer": layer, "position": pos,
        "category": "?", "text_token_index": t, "p_clean": 0.9, "p_corrupted": 0.05, "p_restored": 0.05 + v,
        "noise_scale": 0.3, "samples": 2, "window": 10, "seed": 0, "subject_start": 4, "subject_end": 6,
        "n_tokens": 9, "text_subject_start": 1, "text_subject_end": 2, "n_text_tokens": 3,
    } for pos, (t, v) in enumerate(zip(tti, ie))])


def text_rows(known_id=7, ies=(0.0, 0.3, 0.1, 0.6), layer=0, kind="hidden", model="slm"):
    n = len(ies)
    return pd.DataFrame([{
        "known_id": known_id, "model": model, "modality": "t2t", "kind": kind, "layer": layer, "position": pos,
        "category": primary_category(pos, 1, 2, n), "text_token_index": pos, "p_clean": 0.9, "p_corrupted": 0.1,
        "p_restored": 0.1 + v, "noise_scale": 0.3, "samples": 2, "window": 10, "seed": 0, "subject_start": 1,
        "subject_end": 2, "n_tokens": n, "text_subject_start": 1, "text_subject_end": 2, "n_text_tokens": n,
    } for pos, v in enumerate(ies)])


def test_s2t_prediction_position_is_not_averaged_into_the_last_token():
    aie = aie_table(speech_rows(), combine="mean", n_boot=10).set_index("category")
    # last token = the speech tokens of the last word only (0.1, 0.3); the [Text] marker is `prediction`
    assert aie.loc["last token", "aie"] == pytest.approx(0.2)
    assert aie.loc["prediction", "aie"] == pytest.approx(0.9)
    assert aie.loc["first subsequent", "aie"] == pytest.approx(0.2)  # the last word is also the first after
    assert (aie["same_cells_as"] == "").all()  # speech: different cells
    assert (aie["n"] == 1).all()


def test_s2t_prediction_found_when_the_marker_maps_to_no_text_token():
    rows = speech_rows()
    rows.loc[rows["position"] == 8, "text_token_index"] = -1  # tracing.text_marker = "none"
    aie = aie_table(rows, combine="mean", n_boot=10).set_index("category")
    assert aie.loc["prediction", "aie"] == pytest.approx(0.9)
    assert aie.loc["last token", "aie"] == pytest.approx(0.2)


def test_t2t_has_both_categories_on_the_same_cells():
    aie = aie_table(text_rows(), combine="mean", n_boot=10).set_index("category")
    assert list(aie.index) == [c for c in AIE_CATEGORIES if c not in ("middle subject", "further tokens")]
    assert aie.loc["prediction", "aie"] == aie.loc["last token", "aie"] == pytest.approx(0.6)
    assert aie.loc["prediction", "same_cells_as"] == "last token"
    assert aie.loc["last token", "same_cells_as"] == "prediction"
    many = pd.concat([text_rows(k, ies=(0.0, 0.3, 0.1, 0.1 * k)) for k in range(6)])
    both = aie_table(many, combine="mean", n_boot=50, seed=2).set_index("category")
    cols = ["aie", "ci_low", "ci_high", "n"]  # one set of cells: one CI, not two bootstraps of the same data
    pd.testing.assert_series_equal(both.loc["prediction", cols], both.loc["last token", cols], check_names=False)


# ------------------------------------------------------------------------------------------ 2. min_facts, ratios
def grid_aie() -> pd.DataFrame:
    """slm T->T peaks at last token (0.6, L2); S->T grid max is at first subsequent (0.1, L1); a middle subject
    seen in one fact has the largest value of all (0.9)."""
    rows = []
    for mod, kind, layer, cat in itertools.product(("t2t", "s2t"), ("mlp",), range(3),
                                                   ("middle subject", "first subsequent", "last token")):
        n = 1 if cat == "middle subject" else 8
        val = {("t2t", "last token"): [0.2, 0.4, 0.6], ("s2t", "last token"): [0.01, 0.02, 0.03],
               ("t2t", "first subsequent"): [0.1, 0.2, 0.1], ("s2t", "first subsequent"): [0.05, 0.1, 0.02],
               ("t2t", "middle subject"): [0.9, 0.9, 0.9], ("s2t", "middle subject"): [0.9, 0.9, 0.9]}[(mod, cat)]
        rows.append({"model": "slm", "modality": mod, "kind": kind, "layer": layer, "category": cat,
                     "aie": val[layer], "ci_low": 0.0, "ci_high": 1.0, "n": n, "same_cells_as": ""})
    return pd.DataFrame(rows)


def test_peaks_ignore_categories_below_min_facts():
    pk = peak_effects(grid_aie(), min_facts=5).set_index(["modality"])
    assert pk.loc["t2t", "peak_category"] == "last token" and pk.loc["t2t", "peak_aie"] == pytest.approx(0.6)
    assert pk.loc["s2t", "peak_category"] == "first subsequent"
    assert pk.loc["s2t", "categories_below_min_facts"] == "middle subject"
    assert (pk["n"] == 8).all() and (pk["min_facts"] == 5).all()
    # the ratio of grid maxima is labelled as such and says where the reference maximum is
    assert pk.loc["s2t", "ratio_of_grid_maxima"] == pytest.approx(0.1 / 0.6)
    assert pk.loc["s2t", "reference_peak_category"] == "last token"
    # without the threshold the one-fact category would win
    assert peak_effects(grid_aie(), min_facts=1).set_index("modality").loc["t2t", "peak_category"] == "middle subject"


def test_category_ratios_compare_the_same_cells():
    r = category_ratios(grid_aie(), min_facts=5).set_index("category")
    assert "middle subject" not in r.index
    lt = r.loc["last token"]
    assert lt["ratio_of_category_peaks"] == pytest.approx(0.03 / 0.6)
    assert lt["t2t_peak_layer"] == 2 and lt["s2t_aie_at_t2t_peak"] == pytest.approx(0.03)
    fs = r.loc["first subsequent"]
    assert fs["ratio_of_category_peaks"] == pytest.approx(0.1 / 0.2)
    assert fs["ratio_same_cell"] == pytest.approx(0.1 / 0.2)  # T->T peak at L1, S->T at L1 is 0.1
    assert (r["n_t2t"] == 8).all() and (r["n_s2t"] == 8).all()


# ------------------------------------------------------------------------------------------ 3. tests
def test_exact_sign_flip_hand_cases():
    # d = (1, 2, 3): |sums| of the 8 sign vectors are 6, 4, 2, 0, 0, 2, 4, 6 -> two reach 6: p = 2/8
    r = sign_flip(np.array([1.0, 2.0, 3.0]), 10_000, exact_max_n=20)
    assert (r.p_value, r.method, r.n_perm) == (0.25, "exact", 8)
    assert sign_flip(np.ones(4), 10_000, exact_max_n=20).p_value == 2 / 16
    assert sign_flip(np.array([2.0]), 10_000, exact_max_n=20).p_value == 1.0  # one fact: both flips as extreme
    # 16 facts, all positive: p = 2 / 2^16, far below what 2000 random flips can give
    r16 = sign_flip(np.arange(1.0, 17.0), 10_000, exact_max_n=20)
    assert r16.p_value == pytest.approx(2 / 65536) and r16.n_perm == 65536
    # d = (1, -1, 2, 0.5): |sum| = 2.5; sums >= 2.5 in absolute value: by brute force
    d = np.array([1.0, -1.0, 2.0, 0.5])
    brute = np.mean([abs(np.dot(s, d)) >= 2.5 - 1e-12 for s in itertools.product((1, -1), repeat=4)])
    assert sign_flip(d, 10_000, exact_max_n=20).p_value == pytest.approx(brute)


def test_exact_matches_brute_force_and_monte_carlo_above_the_limit():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=11)
    obs = abs(d.sum())
    brute = np.mean([abs(np.dot(s, d)) >= obs - 1e-9 for s in itertools.product((1, -1), repeat=11)])
    assert sign_flip(d, 10_000, exact_max_n=20).p_value == pytest.approx(brute)
    mc = sign_flip(rng.normal(size=25), n_perm=999, seed=0, exact_max_n=20)
    assert mc.method == "monte carlo" and mc.n_perm == 999
    assert sign_flip(d, exact_max_n=5, n_perm=500, seed=1).method == "monte carlo"


def _effects_for_tests() -> pd.DataFrame:
    rows = []
    for kid in range(7):
        for mod in ("t2t", "s2t"):
            for layer in range(3):
                big = 0.5 if mod == "t2t" else 0.05
                v = big + 0.01 * kid
                # one-token subjects: first subject == last subject, same values -> one test, not two
                for cat in ("first subject", "last subject"):
                    rows.append((kid, mod, layer, cat, v))
                rows.append((kid, mod, layer, "last token", v + 0.1))
                rows.append((kid, mod, layer, "further tokens", 0.0))  # both sides zero: no test
                if kid < 2:
                    rows.append((kid, mod, layer, "middle subject", v))  # 2 facts < min_facts
    df = pd.DataFrame(rows, columns=["known_id", "modality", "layer", "category", "ie"])
    return df.assign(model="slm", kind="mlp")


def test_paired_tests_drop_duplicates_zeros_and_small_n_then_holm():
    res = paired_tests(_effects_for_tests(), bands={"all": (0, 2)}, min_facts=3, n_perm=10_000, exact_max_n=20)
    t, d = res.tests, res.dropped
    assert sorted(t["category"]) == ["last subject", "last token"]
    reasons = dict(zip(d["category"], d["reason"]))
    assert reasons == {"first subject": "duplicate", "further tokens": "all zero", "middle subject": "few facts"}
    assert d.set_index("category").loc["first subject", "same_as"] == "last subject"
    assert (t["method"] == "exact").all() and (t["n_perm"] == 128).all() and (t["n"] == 7).all()
    # 7 facts all T->T > S->T: p = 2/128 each; Holm over the 2 tests kept: 2 * 2/128
    np.testing.assert_allclose(t["p_value"], 2 / 128)
    np.testing.assert_allclose(t["p_holm"], holm([2 / 128, 2 / 128]))
    np.testing.assert_allclose(t["p_holm"], 4 / 128)
    assert t["reject"].all()


# ------------------------------------------------------------------------------------------ 4. figure
def test_figure2_shows_n_per_category_and_counts_negative_and_floored_cells(tmp_path):
    aie = grid_aie()
    aie.loc[0, "aie"] = -0.02  # one negative cell
    aie.loc[1, "aie"] = 5e-5  # one cell under the floor
    paths, cells = figure2_with_counts(aie, [("slm", "t2t", "SLM T->T"), ("slm", "s2t", "SLM S->T")],
                                       tmp_path / "fig2.png")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    tot = cells[["cells", "negative", "floored"]].sum()
    assert tot["negative"] == 1 and tot["floored"] == 1 and tot["cells"] == 18
    from factrace.analysis.figures.heatmaps import _row_labels

    sub = aie[aie["modality"] == "t2t"]
    assert _row_labels(sub, ["middle subject", "last token"]) == ["middle subject (n=1)", "last token (n=8)"]
    text = aie_table(text_rows(), combine="mean", n_boot=5)
    assert _row_labels(text, ["prediction"]) == ["prediction = last token (n=1)"]


# ------------------------------------------------------------------------------------------ 5. articles
class WordTokenizer:
    """Whitespace tokenizer with a BOS, enough for target_token."""

    def __init__(self):
        self.vocab: dict[str, int] = {"<s>": 0}

    def _id(self, w: str) -> int:
        return self.vocab.setdefault(w, len(self.vocab))

    def __call__(self, text: str, add_special_tokens: bool = True):
        ids = [self._id(w) for w in text.split()]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}

    def encode(self, text: str) -> list[int]:
        return self(text)["input_ids"]

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return " ".join(inv[i] for i in ids)


@pytest.mark.parametrize("attribute, traced", [
    ("the Moon", "Moon"), ("The Hague", "Hague"), ("a Hindu temple", "Hindu temple"), ("an actor", "actor"),
    ("An", "An"), ("Theodore", "Theodore"), ("Rome", "Rome"), ("  the   Beatles ", "Beatles"),
])
def test_leading_article_is_not_the_target(attribute, traced):
    assert traced_attribute(attribute) == traced
    tok = WordTokenizer()
    _tid, text = target_token(tok, "Neil Armstrong walked on", attribute)
    assert text == traced.split()[0]


# ------------------------------------------------------------------------------------------ 6. noise scale
def test_rome_embedding_std_embeds_each_subject_alone_with_special_tokens():
    model = tiny_model("llama")
    tok = WordTokenizer()
    loaded = SimpleNamespace(model=model, device=torch.device("cpu"), tokenizer=tok)
    std, n = rome_embedding_std(loaded, ["Eiffel Tower", "Rome"])
    emb = model.get_input_embeddings().weight.detach()
    ids = tok.encode("Eiffel Tower") + tok.encode("Rome")  # [BOS, Eiffel, Tower, BOS, Rome]
    assert n == 5 and ids[0] == 0 and ids[3] == 0
    assert std == pytest.approx(emb[ids].std().item(), rel=1e-6)
    inp = TraceInputs(0, torch.tensor([[0, 5, 1, 2, 6]]), (2, 4), list(range(5)), ["x"] * 5, (2, 4), 5)
    res = noise_scale(loaded, [inp], 3.0, subjects=["Eiffel Tower"])
    assert res["scale"] == pytest.approx(3.0 * emb[[1, 2]].std().item(), rel=1e-6)  # in-prompt rule used
    assert res["std_over_rome"] == pytest.approx(res["std"] / res["std_rome"])


# ------------------------------------------------------------------------------------------ streaming
def test_streamed_effects_equal_the_in_memory_ones(tmp_path):
    parts = [text_rows(k, ies=(0.0, 0.1 * k, 0.2, 0.3 + k / 10), layer=L, kind=kind)
             for k in range(3) for L in range(2) for kind in ("hidden", "mlp")]
    parts += [speech_rows(k, marker_ie=0.5 + k / 10, layer=L) for k in range(3) for L in range(2)]
    files = []
    by_file: dict[tuple, list[pd.DataFrame]] = {}
    for p in parts:
        by_file.setdefault((p["modality"].iloc[0], p["kind"].iloc[0]), []).append(p)
    for i, frames in enumerate(by_file.values()):
        f = tmp_path / f"t{i}.parquet"
        pd.concat(frames, ignore_index=True).assign(token="x").to_parquet(f)
        files.append(f)
    whole = prompt_category_effects(pd.concat(parts, ignore_index=True), "mean")
    streamed = effects_from_traces(files, "mean")
    key = ["model", "modality", "kind", "known_id", "layer", "category"]
    pd.testing.assert_frame_equal(
        streamed.sort_values(key).reset_index(drop=True), whole.sort_values(key).reset_index(drop=True),
        check_dtype=False)
