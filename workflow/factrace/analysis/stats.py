"""T->T vs S->T statistics: paired sign-flip permutation tests with Holm correction.

The tests work on the per-fact table of :func:`factrace.analysis.aie.prompt_category_effects` (columns
known_id, model, modality, kind, layer, category, ie). For one (model, kind, category, layer band), each fact
kept in both modalities gives ``d = mean IE over the band's layers in T->T - the same in S->T``; the test
statistic is ``|mean(d)|``; under H0 (the two modalities are exchangeable within a fact) each ``d`` is
symmetric about zero, so its sign can be flipped.

- n <= ``exact_max_n`` (default 20): all 2^n sign vectors are enumerated (``method = "exact"``), and
  ``p = #{sign vectors with |stat| >= |observed|} / 2^n`` (the identity is one of them, so p >= 2^-n; by the
  symmetry s <-> -s only 2^(n-1) vectors are evaluated).
- larger n: ``n_perm`` random sign vectors (``method = "monte carlo"``) and the +1-corrected
  ``p = (1 + #{|perm stat| >= |observed|}) / (1 + n_perm)``.

Rows are (model, fact set): each S->T fact set of a model (``heard`` and ``text_only`` for a speech LM whose
checkpoint records which facts it heard in speech, ``all`` otherwise) is tested on its own against the model's
T->T trace, on the facts of that set kept in both modalities (the text-only facts that pass both filters: do
facts learnt in text carry over to speech?). Holm's family is every test kept, of every model and set.

Before Holm, tests that carry no information of their own are dropped and reported with the reason
(:data:`DROP_REASONS`): a duplicate (the same facts with the same values on both sides as a test already
kept, e.g. ``last subject`` and ``first subject`` when every subject is one token), both sides all zero, or
fewer than ``min_facts`` paired facts.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factrace.analysis.peaks import peak_effects  # noqa: F401  (kept importable from here)
from factrace.analysis.rows import ALL, Untraced, fact_set_rank, ordered, set_rank, with_fact_set
from factrace.tracing.categories import AIE_CATEGORIES, PREDICTION, PRIMARY_ORDER

log = logging.getLogger(__name__)

BAND_NAMES = ("early", "middle", "late")
DROP_REASONS = {
    "duplicate": "same facts and values on both sides as a test kept",
    "all zero": "both modalities are zero for every fact",
    "few facts": "fewer paired facts than aggregate.min_facts",
    "no facts": "no fact of the S->T set was traced (qc/fates.parquet says why): one row for the whole set",
}
#: which of two duplicate tests is kept: the first in this order (primary_category's precedence)
KEEP_ORDER = (*PRIMARY_ORDER, PREDICTION)


@dataclass(frozen=True)
class SignFlip:
    p_value: float
    method: str  # "exact" | "monte carlo" | "none" (no data)
    n_perm: int  # sign vectors behind the p-value: 2^n when exact


def sign_flip(
    d: np.ndarray, n_perm: int, seed: int | np.random.Generator = 0, chunk: int = 1 << 15, *, exact_max_n: int,
) -> SignFlip:
    """Two-sided paired sign-flip test of ``mean(d) == 0``: exact for ``len(d) <= exact_max_n``, else Monte
    Carlo with ``n_perm`` draws (+1 corrected). NaNs are dropped; an empty ``d`` gives NaN."""
    d = np.asarray(d, dtype=float)
    d = d[~np.isnan(d)]
    n = d.size
    if n == 0:
        return SignFlip(float("nan"), "none", 0)
    obs = abs(d.sum())
    # ties: a permuted sum equal to the observed one up to rounding counts as extreme
    tol = 1e-9 * max(float(np.abs(d).sum()), 1e-300)
    if n <= exact_max_n:
        total = 1 << (n - 1)  # the first sign stays +1: |sum| is the same for s and -s
        shifts = np.arange(n - 1, dtype=np.int64)
        hits = 0
        for c in range(0, total, chunk):
            idx = np.arange(c, min(total, c + chunk), dtype=np.int64)
            signs = 1.0 - 2.0 * ((idx[:, None] >> shifts) & 1)
            sums = d[0] + signs @ d[1:]
            hits += int((np.abs(sums) >= obs - tol).sum())
        return SignFlip(hits / total, "exact", 1 << n)
    if n_perm < 1:
        raise ValueError("n_perm must be >= 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        signs = rng.integers(0, 2, size=(m, n), dtype=np.int8) * 2 - 1
        hits += int((np.abs(signs @ d) >= obs - tol).sum())
        done += m
    return SignFlip((1.0 + hits) / (1.0 + n_perm), "monte carlo", int(n_perm))


def sign_flip_test(
    d: np.ndarray, n_perm: int, seed: int | np.random.Generator = 0, chunk: int = 1 << 15, *, exact_max_n: int,
) -> float:
    """The p-value of :func:`sign_flip`."""
    return sign_flip(d, n_perm=n_perm, seed=seed, chunk=chunk, exact_max_n=exact_max_n).p_value


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order (NaNs stay NaN and do not count as tests).

    Sorted ascending ``p_(1) <= ... <= p_(m)``: ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def layer_bands(layers: Sequence[int] | np.ndarray, n_bands: int = 3,
                names: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """Split the sorted layers into ``n_bands`` contiguous, near-equal bands: name -> (first, last) inclusive.

    The default names for three bands are early / middle / late; otherwise ``band1..bandK``.
    """
    ls = np.unique(np.asarray(layers, dtype=int))
    if ls.size == 0:
        return {}
    n_bands = max(1, min(n_bands, ls.size))
    if names is None:
        names = BAND_NAMES if n_bands == 3 else [f"band{i + 1}" for i in range(n_bands)]
    if len(names) != n_bands:
        raise ValueError(f"{n_bands} bands need {n_bands} names, got {list(names)}")
    return {name: (int(part[0]), int(part[-1])) for name, part in zip(names, np.array_split(ls, n_bands))}


@dataclass(frozen=True)
class PairedTests:
    tests: pd.DataFrame  # one row per test kept (Holm family)
    dropped: pd.DataFrame  # one row per test left out, with its reason


TEST_COLUMNS = ["model", "fact_set", "kind", "category", "band", "layer_first", "layer_last", "n", "mean_a",
                "mean_b", "mean_diff", "method", "n_perm", "p_value", "p_holm", "reject"]
DROPPED_COLUMNS = ["model", "fact_set", "kind", "category", "band", "layer_first", "layer_last", "n", "reason",
                   "same_as"]


def _frame(rows: list[dict[str, object]], cols: list[str]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    return pd.DataFrame(rows)[cols]


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    order = {c: i for i, c in enumerate(AIE_CATEGORIES)}
    return df.sort_values(["model", "fact_set", "kind", "category", "layer_first"],
                          key=lambda s: s.map(order) if s.name == "category" else fact_set_rank(s)
                          if s.name == "fact_set" else s).reset_index(drop=True)


def untraced_tests(untraced: Untraced, modality_b: str = "s2t") -> pd.DataFrame:
    """The dropped-tests rows (:data:`DROPPED_COLUMNS`, reason ``no facts``) of the ``modality_b`` fact sets
    without a traced fact (:func:`factrace.analysis.rows.untraced_sets`): one row per (model, set), its kind,
    category and band empty, n = 0. A test that could not be run is a row with its reason, not an absence."""
    rows = [{"model": model, "fact_set": fs, "kind": "", "category": "", "band": "", "layer_first": pd.NA,
             "layer_last": pd.NA, "n": 0, "reason": "no facts", "same_as": ""}
            for (model, modality), sets in sorted(untraced.items()) if modality == modality_b
            for fs in ordered(sets)]
    return _frame(rows, DROPPED_COLUMNS)


def _candidates(effects: pd.DataFrame, modality_a: str, modality_b: str,
                bands: Mapping[str, tuple[int, int]] | None, n_bands: int):
    """(model, fact_set, kind, category, band, lo, hi, a, b) of every (model, S->T fact set, kind, category,
    band) with paired facts. ``b``: the facts of one set of ``modality_b``; ``a``: the same facts in
    ``modality_a`` (its rows of that set where it has a split of its own, else its set ``all``)."""
    effects = with_fact_set(effects)
    for model, mdf in effects.groupby("model", sort=True):
        mods = set(mdf["modality"].unique())
        if not {modality_a, modality_b} <= mods:
            log.info("model %s lacks %s or %s; not tested", model, modality_a, modality_b)
            continue
        model_bands = dict(bands) if bands is not None else layer_bands(mdf["layer"].unique(), n_bands)
        a_sets = set(mdf.loc[mdf["modality"] == modality_a, "fact_set"])
        b_sets = mdf.loc[mdf["modality"] == modality_b, "fact_set"]
        for fact_set in ordered(b_sets):
            a_set = fact_set if fact_set in a_sets else ALL
            sub = mdf[((mdf["modality"] == modality_a) & (mdf["fact_set"] == a_set))
                      | ((mdf["modality"] == modality_b) & (mdf["fact_set"] == fact_set))]
            for (kind, category), g in sub.groupby(["kind", "category"], sort=True):
                for band, (lo, hi) in model_bands.items():
                    gb = g[(g["layer"] >= lo) & (g["layer"] <= hi)]
                    per_fact = gb.groupby(["modality", "known_id"])["ie"].mean()
                    have = per_fact.index.get_level_values(0)
                    if modality_a not in have or modality_b not in have:
                        continue
                    a, b = per_fact.loc[modality_a], per_fact.loc[modality_b]
                    common = a.index.intersection(b.index).sort_values()
                    if common.empty:
                        continue
                    yield model, fact_set, kind, category, band, int(lo), int(hi), a.loc[common], b.loc[common]


def paired_tests(
    effects: pd.DataFrame,
    modality_a: str = "t2t",
    modality_b: str = "s2t",
    bands: Mapping[str, tuple[int, int]] | None = None,
    n_bands: int = 3,
    *,
    n_perm: int,
    exact_max_n: int,
    seed: int = 0,
    alpha: float = 0.05,
    min_facts: int = 1,
) -> PairedTests:
    """Paired T->T vs S->T sign-flip tests per (model, fact set, kind, category, layer band), Holm-corrected.

    ``effects``: per-fact table (known_id, model, modality, fact_set, kind, layer, category, ie; without
    ``fact_set``: every fact ``all``). Only models traced in both modalities are tested, each S->T fact set on
    its own, on the facts present in both modalities for that (kind, category): the facts of the set that pass
    both filters. ``bands``: name -> (first layer, last layer) inclusive; by default :func:`layer_bands` of each
    model's layers.

    ``tests`` columns: :data:`TEST_COLUMNS` (``n`` paired facts; ``method`` exact | monte carlo; ``n_perm``
    the sign vectors behind p; ``mean_diff`` = a - b; Holm over every row of ``tests``; ``reject`` = p_holm <
    alpha). ``dropped`` columns: :data:`DROPPED_COLUMNS` (``reason`` a key of :data:`DROP_REASONS`;
    ``same_as`` the category of the kept duplicate).
    """
    cands = list(_candidates(effects, modality_a, modality_b, bands, n_bands))
    rank = {c: i for i, c in enumerate(KEEP_ORDER)}
    cands.sort(key=lambda c: (c[0], set_rank(c[1]), c[1], c[2], c[5], rank.get(c[3], len(rank))))
    rows: list[dict[str, object]] = []
    dropped: list[dict[str, object]] = []
    seen: dict[tuple, str] = {}
    for model, fact_set, kind, category, band, lo, hi, a, b in cands:
        head = {"model": model, "fact_set": fact_set, "kind": kind, "category": category, "band": band,
                "layer_first": lo, "layer_last": hi, "n": int(a.size)}
        av, bv = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        sig = (model, fact_set, kind, band, tuple(a.index), av.tobytes(), bv.tobytes())
        if sig in seen:
            dropped.append({**head, "reason": "duplicate", "same_as": seen[sig]})
            continue
        seen[sig] = category
        if not np.any(av) and not np.any(bv):
            dropped.append({**head, "reason": "all zero", "same_as": ""})
            continue
        if a.size < min_facts:
            dropped.append({**head, "reason": "few facts", "same_as": ""})
            continue
        # the seed of a set `all` is that of before the column existed
        key = repr((model, kind, category, band) if fact_set == ALL else (model, fact_set, kind, category, band))
        res = sign_flip(av - bv, n_perm=n_perm, seed=np.random.default_rng([int(seed), zlib.crc32(key.encode())]),
                        exact_max_n=exact_max_n)
        rows.append({**head, "mean_a": float(av.mean()), "mean_b": float(bv.mean()),
                     "mean_diff": float((av - bv).mean()), "method": res.method, "n_perm": res.n_perm,
                     "p_value": res.p_value})
    tests = _frame(rows, TEST_COLUMNS[:-2] if rows else TEST_COLUMNS)
    if rows:
        tests["p_holm"] = holm(tests["p_value"].to_numpy())
        tests["reject"] = tests["p_holm"] < alpha
        tests = tests[TEST_COLUMNS]
    tests, drop = _sorted(tests), _sorted(_frame(dropped, DROPPED_COLUMNS))
    reasons = drop["reason"].value_counts().to_dict() if len(drop) else {}
    log.info("%d paired tests, %d rejected after Holm at alpha=%g; %d dropped %s", len(tests),
             int(tests["reject"].sum()) if len(tests) else 0, alpha, len(drop), reasons)
    return PairedTests(tests, drop)


