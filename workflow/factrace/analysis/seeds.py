"""The miniature across seeds (``make seeds``, ``factrace seeds-table``): which claims survive a reseed.

``make seeds`` runs the offline speech LM's workflow (config/seeds.yaml: the backbone and the speech LM, no
SmolLM2) once per seed into ``results/seeds/seed-N``; this module reads each run's ``compare/peaks.csv`` and the
speech LM's ``eval.json`` and puts them side by side: per Figure 2 row and kind, the grid maximum and where it is
(category, layer), the S->T / T->T same-cell ratios of a few categories, and the build's measures, with each number's spread (min to max) over the seeds.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from factrace.analysis.markdown import Table, dig, num, table
from factrace.analysis.rows import row_name, with_fact_set

log = logging.getLogger(__name__)

#: eval.json measures shown per seed: (label, key in ``summary`` or a dotted path)
MEASURES = (("speech LM, eval.json: speech accuracy, heard facts (main rendering)", "summary.speech_main"),
            ("speech LM, eval.json: carry-over, text-only facts the backbone knows", "summary.carry_over_speech"),
            ("speech LM, eval.json: carry-over n", "summary.carry_over_n"),
            ("speech LM, eval.json: subject's units random, heard facts", "summary.random_units"),
            ("speech LM, eval.json: swapped subject followed, heard facts", "summary.swap_followed"),
            ("speech LM, eval.json: T->T noise multiplier (noise rule)", "noise_t2t.multiplier"),
            ("speech LM, eval.json: S->T noise multiplier (noise rule)", "noise_s2t.multiplier"))


#: categories whose S->T / T->T same-cell ratio is shown per seed (category_ratios.csv)
RATIO_CATEGORIES = ("first subject", "first subsequent", "last token")


def seed_of(run: Path) -> int:
    """The seed a run was made with, from its provenance-free name ``seed-N``."""
    name = Path(run).name
    if not name.startswith("seed-") or not name[5:].isdigit():
        raise ValueError(f"{run}: a seeds run is a folder named seed-N (make seeds writes results/seeds/seed-N)")
    return int(name[5:])


def run_rows(run: Path) -> list[dict[str, Any]]:
    """One run's rows: a peak per Figure 2 row and kind, and the speech LM's build measures."""
    rows: list[dict[str, Any]] = []
    peaks = Path(run) / "compare" / "peaks.csv"
    if not peaks.exists():
        raise FileNotFoundError(f"{peaks}: the run is unfinished (make seeds runs the workflow to its end)")
    for r in with_fact_set(pd.read_csv(peaks)).itertuples():
        what = f"{r.model} {row_name(r.modality, r.fact_set)} {r.kind}"
        rows.append({"what": f"{what}: grid max AIE", "value": float(r.peak_aie)})
        rows.append({"what": f"{what}: at", "value": f"{r.peak_category}, layer {r.peak_layer}"})
    ratios = Path(run) / "compare" / "category_ratios.csv"
    if ratios.exists():
        df = with_fact_set(pd.read_csv(ratios))
        for r in df[df["category"].isin(RATIO_CATEGORIES)].itertuples():
            rows.append({"what": f"{r.model} {row_name('s2t', r.fact_set)} {r.kind} {r.category}: S->T / T->T, "
                                 "same cell", "value": float(r.ratio_same_cell)})
    for ev in sorted(Path(run).glob("speechlm/*/eval.json")):
        e = json.loads(ev.read_text())
        rows += [{"what": label, "value": dig(e, key)} for label, key in MEASURES]
    return rows


def spread(values: list[Any]) -> str:
    """min-max of numbers ('same' when every seed agrees on a label; 'differs' otherwise)."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))]
    if not vals:
        return "-"
    if all(isinstance(v, (int, float)) for v in vals):
        lo, hi = min(vals), max(vals)
        return f"{lo:.3g}" if lo == hi else f"{lo:.3g} to {hi:.3g}"
    return "same" if len(set(map(str, vals))) == 1 else "differs"


def seeds_table(runs: list[Path]) -> pd.DataFrame:
    """Rows: ``what``; columns: ``seed N`` per run and ``spread``; a row missing in a run is empty there."""
    cols = {}
    order: list[str] = []
    for run in sorted(runs, key=seed_of):
        rows = run_rows(run)
        cols[f"seed {seed_of(run)}"] = {r["what"]: r["value"] for r in rows}
        order += [r["what"] for r in rows if r["what"] not in order]
    df = pd.DataFrame({c: [v.get(w) for w in order] for c, v in cols.items()}, index=pd.Index(order, name="what"))
    df["spread"] = [spread(list(r)) for r in df.itertuples(index=False)]
    return df.reset_index()


def main(args: Any) -> int:
    df = seeds_table([Path(r) for r in args.runs])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, sep="\t", index=False)
    print(df.to_string(index=False))
    agree = df[df["what"].str.endswith(": at")]
    print(json.dumps({"seeds": [seed_of(Path(r)) for r in args.runs], "rows": len(df),
                      "peak_cells_same_in_every_seed": int((agree["spread"] == "same").sum()),
                      "peak_cells": len(agree), "table": str(args.out)}))
    return 0


def readme_table(res: Path) -> Table | None:
    """`make seeds`'s table: the miniature's peaks and build measures per seed, with their spread."""
    p = res / "seeds" / "seeds.tsv"
    if not p.exists():
        return None
    df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False)  # a column mixes numbers and cells

    def cell(v: str) -> str:
        try:
            return num(float(v))
        except ValueError:
            return v or "-"

    return table(list(df.columns), [[cell(v) for v in r] for r in df.itertuples(index=False)],
                 ["results/seeds/seeds.tsv"])
