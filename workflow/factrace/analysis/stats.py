"""T->T vs S->T statistics: paired sign-flip permutation tests with Holm correction, and peak effect sizes.

The tests work on the per-fact table of :func:`factrace.analysis.aie.prompt_category_effects` (columns
known_id, model, modality, kind, layer, category, ie). For one (model, kind, category, layer band), each fact
kept in both modalities gives ``d = mean IE over the band's layers in T->T - the same in S->T``; the test
statistic is ``|mean(d)|``; under H0 (the two modalities are exchangeable within a fact) each ``d`` is
symmetric about zero, so its sign can be flipped at random. Two-sided p-value with the +1 correction:
``p = (1 + #{|perm stat| >= |observed|}) / (1 + n_perm)``.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..tracing.categories import CATEGORIES

log = logging.getLogger(__name__)

BAND_NAMES = ("early", "middle", "late")


def sign_flip_test(
    d: np.ndarray, n_perm: int = 10_000, seed: int | np.random.Generator = 0, chunk: int = 2048
) -> float:
    """Two-sided paired sign-flip permutation p-value for ``mean(d) == 0`` (+1 corrected).

    NaNs in ``d`` are dropped; an empty ``d`` gives NaN. Works in chunks of ``chunk`` permutations so the
    memory is ``chunk x len(d)`` whatever ``n_perm`` is.
    """
    d = np.asarray(d, dtype=float)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return float("nan")
    if n_perm < 1:
        raise ValueError("n_perm must be >= 1")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    obs = abs(d.mean())
    # ties: a permuted statistic equal to the observed one (up to float error) counts as extreme
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    hits = 0
    done = 0
    while done < n_perm:
        m = min(chunk, n_perm - done)
        signs = rng.integers(0, 2, size=(m, d.size), dtype=np.int8) * 2 - 1
        stats = np.abs(signs @ d) / d.size
        hits += int((stats >= obs - tol).sum())
        done += m
    return (1.0 + hits) / (1.0 + n_perm)


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


def paired_permutation_tests(
    effects: pd.DataFrame,
    modality_a: str = "t2t",
    modality_b: str = "s2t",
    bands: Mapping[str, tuple[int, int]] | None = None,
    n_bands: int = 3,
    n_perm: int = 10_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired T->T vs S->T sign-flip tests per (model, kind, category, layer band), Holm-corrected.

    ``effects``: per-fact table (known_id, model, modality, kind, layer, category, ie). Only models traced in
    both modalities are tested, on the facts present in both for that (kind, category). ``bands``: name ->
    (first layer, last layer) inclusive; by default :func:`layer_bands` of each model's layers.

    Returns columns model, kind, category, band, layer_first, layer_last, n, mean_a, mean_b, mean_diff
    (a - b), p_value, p_holm (Holm over all rows returned), reject (p_holm < alpha). The family for Holm is
    every test in the returned table.
    """
    cols = ["model", "kind", "category", "band", "layer_first", "layer_last", "n", "mean_a", "mean_b",
            "mean_diff", "p_value", "p_holm", "reject"]
    rows: list[dict[str, object]] = []
    for model, mdf in effects.groupby("model", sort=True):
        mods = set(mdf["modality"].unique())
        if not {modality_a, modality_b} <= mods:
            log.info("model %s lacks %s or %s; not tested", model, modality_a, modality_b)
            continue
        model_bands = dict(bands) if bands is not None else layer_bands(mdf["layer"].unique(), n_bands)
        for (kind, category), g in mdf.groupby(["kind", "category"], sort=True):
            for band, (lo, hi) in model_bands.items():
                gb = g[(g["layer"] >= lo) & (g["layer"] <= hi)]
                per_fact = gb.groupby(["modality", "known_id"])["ie"].mean()
                if modality_a not in per_fact.index.get_level_values(0) or \
                        modality_b not in per_fact.index.get_level_values(0):
                    continue
                a, b = per_fact.loc[modality_a], per_fact.loc[modality_b]
                common = a.index.intersection(b.index).sort_values()
                if common.empty:
                    continue
                d = a.loc[common].to_numpy() - b.loc[common].to_numpy()
                key = repr((model, kind, category, band))
                rng = np.random.default_rng([int(seed), zlib.crc32(key.encode())])
                rows.append({
                    "model": model, "kind": kind, "category": category, "band": band,
                    "layer_first": int(lo), "layer_last": int(hi), "n": int(common.size),
                    "mean_a": float(a.loc[common].mean()), "mean_b": float(b.loc[common].mean()),
                    "mean_diff": float(d.mean()), "p_value": sign_flip_test(d, n_perm=n_perm, seed=rng),
                })
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    order = {c: i for i, c in enumerate(CATEGORIES)}
    out = out.sort_values(["model", "kind", "category", "layer_first"],
                          key=lambda s: s.map(order) if s.name == "category" else s).reset_index(drop=True)
    log.info("%d paired tests, %d rejected after Holm at alpha=%g", len(out), int(out["reject"].sum()), alpha)
    return out[cols]


def peak_effects(aie_df: pd.DataFrame, reference_modality: str = "t2t") -> pd.DataFrame:
    """Peak AIE per (model, modality, kind): its layer, category, CI and n, and the ratio to the same model's
    ``reference_modality`` peak (``ratio_to_reference``; 1 for the reference rows, NaN where the model has no
    reference-modality trace).

    Columns: model, modality, kind, peak_aie, peak_layer, peak_category, ci_low, ci_high, n,
    ratio_to_reference.
    """
    cols = ["model", "modality", "kind", "peak_aie", "peak_layer", "peak_category", "ci_low", "ci_high", "n",
            "ratio_to_reference"]
    df = aie_df.dropna(subset=["aie"])
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    idx = df.groupby(["model", "modality", "kind"], sort=True)["aie"].idxmax()
    peaks = df.loc[idx.to_numpy()].rename(
        columns={"aie": "peak_aie", "layer": "peak_layer", "category": "peak_category"}
    ).reset_index(drop=True)
    ref = peaks.loc[peaks["modality"] == reference_modality, ["model", "kind", "peak_aie"]].rename(
        columns={"peak_aie": "_ref"})
    peaks = peaks.merge(ref, on=["model", "kind"], how="left")
    with np.errstate(divide="ignore", invalid="ignore"):
        peaks["ratio_to_reference"] = peaks["peak_aie"] / peaks["_ref"]
    return peaks[cols]
