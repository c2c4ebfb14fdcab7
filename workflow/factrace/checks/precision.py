"""`factrace dtype-compare`: two runs of the workflow that differ in a model's dtype (bf16 against float32),
compared on what Figure 2 shows. For each row (model, modality, fact set) and kind, on the facts both runs traced:
the largest difference of a mean-AIE cell (category x layer), the peak cell of each run among the categories
with at least ``min_facts`` facts (as the peaks table), and the largest p_clean difference of a fact. The
tolerance is ``tracing.precision.BF16_AIE_TOLERANCE``. A row one run lacks is a row with its reason.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from factrace.analysis import peaks
from factrace.analysis.aie import prompt_category_effects
from factrace.analysis.rows import ALL
from factrace.core import io
from factrace.tracing.precision import BF16_AIE_TOLERANCE

log = logging.getLogger(__name__)

COLUMNS = ["model", "modality", "fact_set", "kind", "dtype", "reference_dtype", "n_traced", "n_reference",
           "n_common", "max_aie_diff", "peak", "reference_peak", "same_peak", "peak_gap", "max_p_clean_diff",
           "within_tolerance", "reason"]


def read_traces(results: str | Path) -> pd.DataFrame:
    """Every shard trace table of a run (``{results}/trace/<model>/<modality>/<kind>/shard-*.parquet``)."""
    paths = sorted(Path(results).glob("trace/*/*/*/shard-*.parquet"))
    if not paths:
        raise FileNotFoundError(2, "no trace tables (trace/<model>/<modality>/<kind>/shard-*.parquet)",
                                str(Path(results) / "trace"))
    return io.read_tables(paths, "trace")


def _cells(effects: pd.DataFrame) -> pd.DataFrame:
    """Mean IE and n per (fact_set, kind, category, layer)."""
    return effects.groupby(["fact_set", "kind", "category", "layer"], observed=True)["ie"].agg(["mean", "count"])


def _peak(cells: pd.DataFrame, min_facts: int) -> tuple[str, int] | None:
    """The (category, layer) of one row's peak by the figures' rule (:func:`peaks.grid_maxima`) on the mean
    cells ``cells`` (index category, layer; columns mean, count)."""
    grid = cells.reset_index().rename(columns={"mean": "aie", "count": "n"})
    top = peaks.grid_maxima(grid.assign(model="", modality="", fact_set=ALL, kind=""), min_facts)
    return None if top.empty else (str(top["category"].iloc[0]), int(top["layer"].iloc[0]))


def _label(cell: tuple[str, int] | None) -> str:
    return "" if cell is None else f"{cell[0]} @ layer {cell[1]}"


def _dtype(trace: pd.DataFrame) -> str:
    return ",".join(sorted(trace["dtype"].astype(str).unique())) if "dtype" in trace.columns else "float32"


def compare_runs(trace: pd.DataFrame, reference: pd.DataFrame, *, combine: str, min_facts: int) -> pd.DataFrame:
    """One row per (model, modality, fact_set, kind) of ``trace`` against the same row of ``reference``."""
    rows = []
    for (model, modality), a in trace.groupby(["model", "modality"], sort=True, observed=True):
        b = reference[(reference["model"] == model) & (reference["modality"] == modality)]
        base = {"model": model, "modality": modality, "dtype": _dtype(a), "n_traced": a["known_id"].nunique(),
                "n_reference": b["known_id"].nunique()}
        if b.empty:
            rows.append({**base, "reason": "not traced in the reference run"})
            continue
        base["reference_dtype"] = _dtype(b)
        common = sorted(set(a["known_id"]) & set(b["known_id"]))
        a, b = a[a["known_id"].isin(common)], b[b["known_id"].isin(common)]
        p = [x.groupby("known_id")["p_clean"].first() for x in (a, b)]
        p_diff = float((p[0] - p[1]).abs().max()) if common else np.nan
        ca, cb = _cells(prompt_category_effects(a, combine)), _cells(prompt_category_effects(b, combine))
        for (fact_set, kind), ga in ca.groupby(level=["fact_set", "kind"], observed=True):
            key = {**base, "fact_set": fact_set, "kind": kind, "max_p_clean_diff": p_diff}
            try:
                gb = cb.xs((fact_set, kind), level=["fact_set", "kind"])
            except KeyError:
                rows.append({**key, "reason": "this fact set and kind has no cells in the reference run"})
                continue
            ga = ga.droplevel(["fact_set", "kind"])
            joined = ga.join(gb.add_suffix("_ref"), how="inner")
            pa, pb = _peak(ga, min_facts), _peak(gb, min_facts)
            gap = (float(gb.loc[pb, "mean"] - gb.loc[pa, "mean"])
                   if pa is not None and pb is not None and pa in gb.index else np.nan)
            diff = float((joined["mean"] - joined["mean_ref"]).abs().max())
            rows.append({**key, "n_common": int(ga["count"].max()), "max_aie_diff": diff, "peak": _label(pa),
                         "reference_peak": _label(pb), "same_peak": pa == pb and pa is not None, "peak_gap": gap,
                         "within_tolerance": diff <= BF16_AIE_TOLERANCE, "reason": ""})
    out = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in out.columns:
            out[c] = pd.NA
    return out[COLUMNS]


def _run(args: argparse.Namespace) -> None:
    out = compare_runs(read_traces(args.results), read_traces(args.reference), combine=args.combine,
                       min_facts=args.min_facts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(args.out, sep="\t", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(out.drop(columns=["reason"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    bad = out[out["within_tolerance"].eq(False) | out["same_peak"].eq(False)]
    log.info("%s: %d row(s) compared, %d beyond the tolerance %s or with another peak cell", args.out, len(out),
             len(bad), BF16_AIE_TOLERANCE)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dtype-compare", help="two runs that differ in a model's dtype, compared on Figure 2's cells",
                       description="Two runs of the workflow that differ in a model's dtype (bf16 against float32), "
                                   "compared on Figure 2's cells, on the facts both traced; one TSV row per model, "
                                   "modality, fact set and kind.")
    p.add_argument("--results", required=True, help="the run to check (e.g. results: SmolLM2 in bf16)")
    p.add_argument("--reference", required=True, help="the float32 run (make dtype-check: results/float32)")
    p.add_argument("--combine", required=True, help="aggregate.combine (how speech tokens of a word combine)")
    p.add_argument("--min-facts", type=int, required=True, help="aggregate.min_facts (categories eligible for a peak)")
    p.add_argument("--out", required=True, help="TSV, one row per model, modality, fact set and kind")
    p.set_defaults(func=_run)


__all__ = ["COLUMNS", "compare_runs", "read_traces"]
