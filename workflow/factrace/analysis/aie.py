"""Average indirect effect (AIE) per (model, modality, kind, layer, category), with bootstrap CIs over prompts.

Definitions (Meng et al. 2022; the paper's Section 2.4):

- IE of one traced cell = ``p_restored - p_corrupted`` (probability of the target, not log probability).
- A prompt's IE for a token category at a layer = mean IE over that prompt's positions in the category
  (middle subject and further tokens can hold several positions). Categories come from
  :func:`factrace.tracing.categories.categories_of`, so one position can count in two categories (a one-token
  subject is both first and last subject token; a first subsequent token that ends the prompt is also the last
  token). Positions before the subject belong to no category and are dropped.
- AIE = mean over prompts of that per-prompt value; ``n`` = number of prompts that have the category
  at that layer; the CI is a percentile bootstrap over prompts.

Speech (``modality`` in :data:`SPEECH_MODALITIES`): rows are per speech-token position; each carries
``text_token_index`` (the text token it realises, negative for none) and the subject range in text-token
units (``text_subject_start``, ``text_subject_end`` exclusive, ``n_text_tokens``). The speech tokens of one
text token are combined first (:func:`collapse_speech_positions`), then the text-level table goes through
the same aggregation as text.

The prediction position (category ``prediction``): the last input position, where the target's probability
is read. In text it is the last token, so ``prediction`` and ``last token`` hold the same cells (the AIE table
says so in ``same_cells_as``). In speech it is the ``[Text]`` marker after the speech tokens; it is kept
apart from the speech tokens of the last word (``last token``), which realise a text token as every other
category does, whatever text token the trace stage assigned to the marker.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from factrace.analysis.rows import ALL, fact_set_rank, with_fact_set
from factrace.core.contracts import check
from factrace.tracing.categories import AIE_CATEGORIES, PREDICTION, category_masks, primary_categories
from factrace.tracing.method import indirect_effect

log = logging.getLogger(__name__)

SPEECH_MODALITIES: frozenset[str] = frozenset({"s2t"})
COMBINE_RULES = ("mean", "max", "sum")
Combine = Literal["mean", "max", "sum"]

#: Floor applied before log10 (:func:`log_aie`): AIE <= 1e-4 (including zero and negative AIE, which arise
#: when restoring a state lowers the target probability on average) is shown as -4. 1e-4 is far below the
#: AIEs the paper plots (S->T ~1e-3..1e-2, T->T up to ~0.3), so it only hides noise around zero.
LOG_AIE_FLOOR = 1e-4

GROUP = ["model", "modality", "fact_set", "kind", "layer"]
PROMPT_KEY = ["known_id", "model", "modality", "fact_set", "kind", "layer"]
# per-prompt columns carried through the speech collapse unchanged (first value of each group)
_PER_PROMPT = ["p_clean", "p_corrupted", "noise_scale", "samples", "window", "seed"]


def log_aie(aie: np.ndarray | pd.Series | float, floor: float = LOG_AIE_FLOOR) -> np.ndarray | pd.Series:
    """``log10(max(aie, floor))``; NaN stays NaN (an empty category is not silently shown as the floor)."""
    if floor <= 0:
        raise ValueError(f"floor must be positive, got {floor}")
    if isinstance(aie, pd.Series):
        return pd.Series(np.log10(np.maximum(aie.to_numpy(dtype=float), floor)), index=aie.index, name=aie.name)
    return np.log10(np.maximum(np.asarray(aie, dtype=float), floor))


def _with_ie(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    if "ie" not in out.columns:
        out["ie"] = indirect_effect(out["p_restored"].astype(float), out["p_corrupted"].astype(float))
    return out


def collapse_speech_positions(df: pd.DataFrame, combine: Combine) -> pd.DataFrame:
    """Combine the speech-token rows of each text token into one text-token row.

    Only rows whose modality is in :data:`SPEECH_MODALITIES` are collapsed; other rows are returned
    unchanged (with an ``ie`` column added). For the collapsed rows:

    - ``ie`` = ``combine`` (mean | max | sum) of the speech tokens' IEs, ``p_restored = p_corrupted + ie``
      (so ``ie == p_restored - p_corrupted`` still holds; with ``sum`` p_restored can exceed 1);
    - ``position`` = ``text_token_index``; ``subject_start``, ``subject_end``, ``n_tokens`` take the values
      of ``text_subject_start``, ``text_subject_end``, ``n_text_tokens``; ``category`` is recomputed in
      text-token units (primary category);
    - ``n_speech_tokens`` = how many speech tokens were combined;
    - the prediction position (the last speech-level position, the ``[Text]`` marker) becomes a row of its
      own with ``is_prediction = True``, ``position = n_text_tokens`` (after the last word) and category
      ``prediction``; every other collapsed row has ``is_prediction = False``.

    Other speech tokens that realise no text token (``text_token_index`` < 0 or missing: ``[Speech]``,
    silence) are dropped; rows with a missing ``p_restored`` are dropped.
    """
    if combine not in COMBINE_RULES:
        raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}")
    df = with_fact_set(_with_ie(df))
    is_speech = df["modality"].isin(SPEECH_MODALITIES)
    other = df.loc[~is_speech]
    sp = df.loc[is_speech]
    if sp.empty:
        return other.reset_index(drop=True)
    need = ["text_token_index", "text_subject_start", "text_subject_end", "n_text_tokens", "n_tokens"]
    missing = [c for c in need if c not in sp.columns]
    if missing:
        raise KeyError(f"speech trace rows need columns {missing} to be mapped to text tokens")
    pred = (sp["position"].astype("int64") == sp["n_tokens"].astype("int64") - 1).to_numpy()
    tti = pd.to_numeric(sp["text_token_index"], errors="coerce")
    tti = tti.where(~pred, sp["n_text_tokens"].astype("int64"))  # the marker: its own slot after the last word
    unmapped = (tti.isna() | (tti < 0)).to_numpy()
    nan_ie = sp["ie"].isna().to_numpy()
    if unmapped.any():
        log.info("dropping %d speech-token rows that realise no text token", int(unmapped.sum()))
    sp = sp.assign(text_token_index=tti).loc[~unmapped & ~nan_ie].copy()
    if sp.empty:
        return other.reset_index(drop=True)
    sp["text_token_index"] = sp["text_token_index"].astype("int64")
    keys = [*PROMPT_KEY, "text_token_index"]
    first_cols = [c for c in [*_PER_PROMPT, "text_subject_start", "text_subject_end", "n_text_tokens"]
                  if c in sp.columns]
    agg: dict[str, tuple[str, str]] = {c: (c, "first") for c in first_cols}
    agg["ie"] = ("ie", combine)
    agg["n_speech_tokens"] = ("ie", "size")
    out = sp.groupby(keys, sort=True, observed=True).agg(**agg).reset_index()
    out["p_restored"] = out["p_corrupted"].astype(float) + out["ie"]
    out["position"] = out["text_token_index"].astype("int64")
    out["subject_start"] = out["text_subject_start"].astype("int64")
    out["subject_end"] = out["text_subject_end"].astype("int64")
    out["n_tokens"] = out["n_text_tokens"].astype("int64")
    out["is_prediction"] = (out["position"] == out["n_tokens"]).to_numpy()
    out["category"] = primary_categories(
        out["position"], out["subject_start"], out["subject_end"], out["n_tokens"], out["is_prediction"]
    )
    log.debug("collapsed %d speech-token rows into %d text-token rows (%s)", len(sp), len(out), combine)
    if other.empty:
        return out
    return pd.concat([other, out], ignore_index=True, sort=False)


def _prediction_flags(df: pd.DataFrame) -> np.ndarray:
    """``is_prediction`` where a collapsed speech row set it, else ``position == n_tokens - 1`` (text)."""
    text_rule = (df["position"].to_numpy(dtype=np.int64) == df["n_tokens"].to_numpy(dtype=np.int64) - 1)
    if "is_prediction" not in df.columns:
        return text_rule
    flag = df["is_prediction"]
    return np.where(flag.isna().to_numpy(), text_rule, flag.fillna(False).to_numpy(dtype=bool))


def expand_categories(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (row of ``df``, category it belongs to); rows in no category are dropped.

    Uses ``subject_start``/``subject_end``/``n_tokens`` when present (so a position can count twice: a
    one-token subject is first and last subject; a text prompt's last token is also the prediction position);
    otherwise falls back to the single ``category`` label of the trace table (logged as a warning).
    """
    if {"subject_start", "subject_end", "n_tokens"} <= set(df.columns):
        masks = category_masks(
            df["position"].to_numpy(), df["subject_start"].to_numpy(), df["subject_end"].to_numpy(),
            df["n_tokens"].to_numpy(), _prediction_flags(df),
        )
        parts = []
        for cat in AIE_CATEGORIES:
            m = masks[cat]
            if m.any():
                part = df.loc[m].copy()
                part["category"] = cat
                parts.append(part)
        if not parts:
            return df.iloc[0:0].assign(category=pd.Series(dtype=object))
        return pd.concat(parts, ignore_index=True)
    log.warning("trace table has no subject_start/subject_end/n_tokens; using its single category labels, "
                "so a one-token subject counts only once")
    return df.loc[df["category"].isin(AIE_CATEGORIES)].reset_index(drop=True)


def prompt_category_effects(trace: pd.DataFrame, combine: Combine) -> pd.DataFrame:
    """Per-prompt IE per category: columns known_id, model, modality, fact_set, kind, layer, category, ie,
    n_positions (``fact_set`` from the trace table, ``all`` where it has none).

    Speech rows are first collapsed to text tokens with ``combine``. This is the per-fact table that
    :func:`aggregate_aie` averages and :mod:`factrace.analysis.stats` tests.
    """
    cols = [*PROMPT_KEY, "category", "ie", "n_positions"]
    if trace.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    df = collapse_speech_positions(with_fact_set(trace), combine)
    df = df.loc[df["ie"].notna()]
    ex = expand_categories(df)
    if ex.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = (
        ex.groupby([*PROMPT_KEY, "category"], sort=False, observed=True)["ie"]
        .agg(ie="mean", n_positions="size")
        .reset_index()
    )
    return out[cols]


def _rng_for(seed: int, key: Hashable) -> np.random.Generator:
    """A generator that depends on the seed and the group key only (not on group order or on other groups)."""
    return np.random.default_rng([int(seed), zlib.crc32(repr(key).encode())])


def bootstrap_mean_ci(
    values: np.ndarray,
    n_boot: int,
    seed: int | np.random.Generator = 0,
    ci: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the column means of ``values`` (prompts x columns; NaN = missing).

    All columns share the same resampled prompts (a multinomial count per prompt and replicate, so the
    replicates are one matrix product). Returns ``(mean, ci_low, ci_high, n)``, each of length
    ``values.shape[1]`` (a 1-D input is one column). Columns with one prompt get a zero-width CI, columns
    with none get NaN.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    present = ~np.isnan(x)
    n = present.sum(axis=0)
    filled = np.where(present, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=0) / n
    n_rows = x.shape[0]
    if n_rows == 0 or n_boot <= 0:
        nan = np.full(x.shape[1], np.nan)
        return mean, nan.copy(), nan.copy(), n
    counts = rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=n_boot).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (counts @ filled) / (counts @ present.astype(float))
    alpha = (1.0 - ci) / 2.0
    lo = np.full(x.shape[1], np.nan)
    hi = np.full(x.shape[1], np.nan)
    ok = n > 0
    if ok.any():
        # a replicate that drew none of a column's prompts is NaN and left out of that column's quantiles
        q = np.nanquantile(boot[:, ok], [alpha, 1.0 - alpha], axis=0)
        lo[ok], hi[ok] = q[0], q[1]
    return mean, lo, hi, n


def coinciding_groups(effects: pd.DataFrame) -> set[tuple[str, str, str, str]]:
    """(model, modality, fact_set, kind) groups whose ``prediction`` and ``last token`` per-fact effects are the
    same cells (same facts, layers and values): every text trace, where the prediction position is the last
    token."""
    out: set[tuple[str, str, str, str]] = set()
    effects = with_fact_set(effects)
    sub = effects[effects["category"].isin(["last token", PREDICTION])]
    for key, g in sub.groupby(["model", "modality", "fact_set", "kind"], sort=True, observed=True):
        a = g[g["category"] == "last token"].set_index(["known_id", "layer"])["ie"].sort_index()
        b = g[g["category"] == PREDICTION].set_index(["known_id", "layer"])["ie"].sort_index()
        if len(a) and a.index.equals(b.index) and np.array_equal(a.to_numpy(), b.to_numpy(), equal_nan=True):
            out.add(tuple(str(k) for k in key))  # type: ignore[arg-type]
    return out


def aggregate_aie(
    effects: pd.DataFrame, n_boot: int, seed: int = 0, ci: float = 0.95
) -> pd.DataFrame:
    """AIE table (the ``aie`` contract) from per-prompt effects (:func:`prompt_category_effects`).

    One bootstrap per (model, modality, fact_set, kind, category), resampling prompts jointly across layers,
    seeded from ``seed`` and the group key (without the set for ``all``: the draws of a trace without a split
    are those of before the column existed). Each fact set (``heard``, ``text_only``; ``all`` for every trace
    without a split) is averaged on its own. Rows are ordered by model, modality, fact set (all, heard,
    text_only), kind, category (ROME order, then ``prediction``), layer. ``n`` (facts with the category at that
    layer) is on every row; ``same_cells_as`` names the other category that holds exactly the same cells
    (``prediction`` <-> ``last token`` in text), empty otherwise, so that no reader counts them twice.
    """
    out_cols = ["model", "modality", "fact_set", "kind", "layer", "category", "aie", "ci_low", "ci_high", "n",
                "same_cells_as"]
    if effects.empty:
        from factrace.core.contracts import empty

        return with_fact_set(empty("aie")).assign(same_cells_as=pd.Series(dtype=object))[out_cols]
    effects = with_fact_set(effects)
    same = coinciding_groups(effects)
    rows: list[pd.DataFrame] = []
    for key, grp in effects.groupby(["model", "modality", "fact_set", "kind", "category"], sort=True, observed=True):
        model, modality, fact_set, kind, category = key
        twin = ""
        if (str(model), str(modality), str(fact_set), str(kind)) in same and category in ("last token", PREDICTION):
            twin = PREDICTION if category == "last token" else "last token"
        # the same cells get the same bootstrap draws (the generator of `last token`), hence the same CI
        base = (model, modality) if fact_set == ALL else (model, modality, fact_set)
        rng_key = (*base, kind, "last token") if twin else (*base, kind, category)
        mat = grp.pivot_table(index="known_id", columns="layer", values="ie", aggfunc="mean", dropna=False)
        mean, lo, hi, n = bootstrap_mean_ci(mat.to_numpy(), n_boot=n_boot, seed=_rng_for(seed, rng_key), ci=ci)
        part = pd.DataFrame({
            "model": model, "modality": modality, "fact_set": fact_set, "kind": kind,
            "layer": mat.columns.to_numpy().astype("int64"), "category": category,
            "aie": mean, "ci_low": lo, "ci_high": hi, "n": n.astype("int64"), "same_cells_as": twin,
        })
        rows.append(part[part["n"] > 0])
    out = pd.concat(rows, ignore_index=True)[out_cols]
    order = {c: i for i, c in enumerate(AIE_CATEGORIES)}
    out = out.sort_values(
        ["model", "modality", "fact_set", "kind", "category", "layer"],
        key=lambda s: s.map(order) if s.name == "category" else fact_set_rank(s) if s.name == "fact_set" else s,
    ).reset_index(drop=True)
    return check(out, "aie", source="aggregate_aie")


WindowKey = tuple[str, str, str]


def trace_windows(trace: pd.DataFrame) -> dict[WindowKey, int]:
    """(model, modality, kind) -> the ``window`` of the trace rows (one per table; the largest if several)."""
    if trace.empty or "window" not in trace.columns:
        return {}
    w = trace.groupby(["model", "modality", "kind"], sort=True, observed=True)["window"].max()
    return {(str(m), str(mod), str(k)): int(v) for (m, mod, k), v in w.items()}


def with_windows(aie: pd.DataFrame, windows: dict[WindowKey, int]) -> pd.DataFrame:
    """``aie`` with the column ``window``: the window of the traces of each row's (model, modality, kind)."""
    keys = zip(aie["model"].astype(str), aie["modality"].astype(str), aie["kind"].astype(str))
    return aie.assign(window=pd.array([windows.get(k) for k in keys], dtype="Int64"))


def aie_table(
    trace: pd.DataFrame,
    combine: Combine,
    n_boot: int,
    seed: int = 0,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Trace table -> AIE table (``aie`` contract, with ``window``). See the module docstring for the definitions."""
    effects = prompt_category_effects(trace, combine=combine)
    out = with_windows(aggregate_aie(effects, n_boot=n_boot, seed=seed, ci=ci), trace_windows(trace))
    log.info("AIE over %d prompt(s): %d rows", effects["known_id"].nunique() if len(effects) else 0, len(out))
    return out


def categories_present(aie_df: pd.DataFrame) -> Sequence[str]:
    """The categories that occur in ``aie_df``, in ROME order then ``prediction``."""
    have = set(aie_df["category"].unique())
    return [c for c in AIE_CATEGORIES if c in have]
