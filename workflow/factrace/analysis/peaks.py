"""Peak effect sizes of the AIE tables, and S->T / T->T ratios that compare like with like.

A category's ``n`` is the number of facts that have it (the largest ``n`` over its layers). Categories with
``n < min_facts`` (``aggregate.min_facts``) are left out of every peak and ratio: a middle subject seen in
one fact is not an effect size. Every table is keyed by row = (model, modality, fact set): a speech LM whose
checkpoint records which facts it heard in speech has two S->T rows, ``heard`` and ``text_only``, each against
the same T->T row (``all``); every other row has the set ``all`` (:mod:`factrace.analysis.rows`). Three tables:

- :func:`peak_effects`: the grid maximum per (model, modality, fact_set, kind) over the eligible (category,
  layer) cells, and ``ratio_of_grid_maxima`` = this maximum / the reference modality's maximum of the same model
  and kind. The two maxima can sit in different cells (the category and layer of both are given); this is a
  ratio of maxima, not an effect at one position.
- :func:`category_peaks`: the maximum over layers per (model, modality, fact_set, kind, category), every
  category, with ``n`` and ``eligible``.
- :func:`category_ratios`: per (model, S->T fact set, kind, category) eligible in both modalities, the ratio of
  the category's peaks and the ratio on the same cell (S->T at the layer of the T->T peak, same category).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from factrace.analysis.rows import ALL, fact_set_rank, with_fact_set
from factrace.tracing.categories import AIE_CATEGORIES

log = logging.getLogger(__name__)

KEY = ["model", "modality", "fact_set", "kind"]
PEAK_COLUMNS = ["model", "modality", "fact_set", "kind", "peak_aie", "peak_layer", "peak_category", "ci_low",
                "ci_high", "n", "min_facts", "categories_below_min_facts", "reference_peak_aie", "reference_peak_category",
                "reference_peak_layer", "ratio_of_grid_maxima"]
CATEGORY_PEAK_COLUMNS = ["model", "modality", "fact_set", "kind", "category", "peak_aie", "peak_layer", "ci_low",
                         "ci_high", "n", "eligible", "same_cells_as"]
RATIO_COLUMNS = ["model", "fact_set", "kind", "category", "n_t2t", "n_s2t", "t2t_peak_aie", "t2t_peak_layer",
                 "s2t_peak_aie", "s2t_peak_layer", "ratio_of_category_peaks", "s2t_aie_at_t2t_peak",
                 "ratio_same_cell"]


def _empty(cols: list[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})


def category_n(aie_df: pd.DataFrame) -> pd.DataFrame:
    """Facts per (model, modality, fact_set, kind, category): the largest ``n`` over its layers (column
    ``n_facts``)."""
    return (with_fact_set(aie_df).groupby([*KEY, "category"], sort=False, observed=True)["n"].max()
            .rename("n_facts").reset_index())


def eligible_cells(aie_df: pd.DataFrame, min_facts: int) -> pd.DataFrame:
    """The rows of ``aie_df`` (AIE not NaN) whose category has at least ``min_facts`` facts."""
    df = with_fact_set(aie_df).dropna(subset=["aie"])
    if df.empty:
        return df
    n = category_n(df)
    df = df.merge(n, on=[*KEY, "category"], how="left")
    return df[df["n_facts"] >= min_facts].drop(columns="n_facts")


def grid_maxima(aie_df: pd.DataFrame, min_facts: int) -> pd.DataFrame:
    """The peak rule: per (model, modality, fact_set, kind), the row of ``aie_df`` with the largest AIE among
    the eligible cells (:func:`eligible_cells`); ties go to the first cell in ROME category order, then layer."""
    df = _order(eligible_cells(aie_df, min_facts))
    if df.empty:
        return df
    return df.loc[df.groupby(KEY, sort=False)["aie"].idxmax().to_numpy()].reset_index(drop=True)


def _order(df: pd.DataFrame) -> pd.DataFrame:
    order = {c: i for i, c in enumerate(AIE_CATEGORIES)}
    return df.sort_values([*KEY, "category", "layer"],
                          key=lambda s: s.map(order) if s.name == "category" else fact_set_rank(s)
                          if s.name == "fact_set" else s).reset_index(drop=True)


def peak_effects(aie_df: pd.DataFrame, reference_modality: str = "t2t", min_facts: int = 1) -> pd.DataFrame:
    """Grid maximum per (model, modality, fact_set, kind) over the categories with ``n >= min_facts``; columns
    :data:`PEAK_COLUMNS`. Ties go to the first cell in ROME category order (``last token`` before
    ``prediction``), then layer. ``ratio_of_grid_maxima`` is NaN where the model has no reference trace; each
    fact set of a model is compared with the same reference row (the model's T->T, set ``all``)."""
    if aie_df.empty:
        return _empty(PEAK_COLUMNS)
    aie_df = with_fact_set(aie_df)
    below = category_n(aie_df)
    below = below[below["n_facts"] < min_facts]
    peaks = grid_maxima(aie_df, min_facts)
    if peaks.empty:
        return _empty(PEAK_COLUMNS)
    peaks = peaks.rename(columns={"aie": "peak_aie", "layer": "peak_layer", "category": "peak_category"})
    peaks["min_facts"] = int(min_facts)
    order = {c: i for i, c in enumerate(AIE_CATEGORIES)}
    peaks["categories_below_min_facts"] = [
        ";".join(sorted(below.loc[(below["model"] == r.model) & (below["modality"] == r.modality)
                                  & (below["fact_set"] == r.fact_set) & (below["kind"] == r.kind), "category"],
                        key=lambda c: order.get(c, 99)))
        for r in peaks.itertuples()
    ]
    ref = peaks.loc[peaks["modality"] == reference_modality]
    # one reference per (model, kind): the set `all` first (a reference modality is never split in practice)
    ref = ref.sort_values("fact_set", key=lambda s: s.ne(ALL), kind="stable").drop_duplicates(["model", "kind"])
    ref = ref[["model", "kind", "peak_aie", "peak_category", "peak_layer"]]
    ref = ref.rename(columns={"peak_aie": "reference_peak_aie", "peak_category": "reference_peak_category",
                              "peak_layer": "reference_peak_layer"})
    peaks = peaks.merge(ref, on=["model", "kind"], how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        peaks["ratio_of_grid_maxima"] = peaks["peak_aie"] / peaks["reference_peak_aie"]
    return peaks[PEAK_COLUMNS]


def category_peaks(aie_df: pd.DataFrame, min_facts: int = 1) -> pd.DataFrame:
    """Maximum over layers per (model, modality, fact_set, kind, category), every category; columns
    :data:`CATEGORY_PEAK_COLUMNS` (``eligible``: ``n >= min_facts``)."""
    df = _order(with_fact_set(aie_df).dropna(subset=["aie"]))
    if df.empty:
        return _empty(CATEGORY_PEAK_COLUMNS)
    n = category_n(df)
    idx = df.groupby([*KEY, "category"], sort=False)["aie"].idxmax()
    out = df.loc[idx.to_numpy()].drop(columns="n").merge(n, on=[*KEY, "category"])
    out = out.rename(columns={"aie": "peak_aie", "layer": "peak_layer", "n_facts": "n"})
    out["eligible"] = out["n"] >= min_facts
    if "same_cells_as" not in out.columns:
        out["same_cells_as"] = ""
    out["same_cells_as"] = out["same_cells_as"].fillna("")
    return _order(out.rename(columns={"peak_layer": "layer"})).rename(columns={"layer": "peak_layer"})[
        CATEGORY_PEAK_COLUMNS]


def category_ratios(aie_df: pd.DataFrame, min_facts: int = 1, text: str = "t2t", speech: str = "s2t") -> pd.DataFrame:
    """S->T / T->T per (model, S->T fact set, kind, category) eligible in both modalities; columns
    :data:`RATIO_COLUMNS` (``fact_set``: the S->T row's set; the T->T side is the model's T->T row, set ``all``).

    ``ratio_of_category_peaks`` = the category's S->T maximum over layers / its T->T maximum;
    ``ratio_same_cell`` = S->T AIE at the layer of the T->T peak (same category) / the T->T peak.
    """
    df = eligible_cells(aie_df, min_facts)
    rows = []
    for (model, kind, category), g in df.groupby(["model", "kind", "category"], sort=True):
        a_all = g[g["modality"] == text]
        for fact_set, b in g[g["modality"] == speech].groupby("fact_set", sort=False):
            # the text side of the same set where the text trace has one (never, in practice), else `all`
            a = a_all[a_all["fact_set"] == fact_set] if (a_all["fact_set"] == fact_set).any() else \
                a_all[a_all["fact_set"] == ALL]
            if a.empty or b.empty:
                continue
            ta, sb = a.loc[a["aie"].idxmax()], b.loc[b["aie"].idxmax()]
            at = b.loc[b["layer"] == ta["layer"], "aie"]
            s_at = float(at.iloc[0]) if len(at) else float("nan")
            with np.errstate(divide="ignore", invalid="ignore"):
                rows.append({
                    "model": model, "fact_set": fact_set, "kind": kind, "category": category,
                    "n_t2t": int(a["n"].max()),
                    "n_s2t": int(b["n"].max()), "t2t_peak_aie": float(ta["aie"]),
                    "t2t_peak_layer": int(ta["layer"]), "s2t_peak_aie": float(sb["aie"]),
                    "s2t_peak_layer": int(sb["layer"]),
                    "ratio_of_category_peaks": float(np.float64(sb["aie"]) / np.float64(ta["aie"])),
                    "s2t_aie_at_t2t_peak": s_at, "ratio_same_cell": float(np.float64(s_at) / np.float64(ta["aie"])),
                })
    if not rows:
        return _empty(RATIO_COLUMNS)
    out = pd.DataFrame(rows)[RATIO_COLUMNS]
    order = {c: i for i, c in enumerate(AIE_CATEGORIES)}
    return out.sort_values(["model", "fact_set", "kind", "category"],
                           key=lambda s: s.map(order) if s.name == "category" else fact_set_rank(s)
                           if s.name == "fact_set" else s).reset_index(drop=True)
