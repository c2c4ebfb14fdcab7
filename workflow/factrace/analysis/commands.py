"""The analysis commands: ``factrace aie``, ``factrace compare`` and ``factrace summarize``.

``compare`` writes, next to Figure 2 (log AIE, negative cells hatched) and its signed twin:
``peaks`` (grid maxima and their ratio), ``category_peaks`` (every category, with n and eligibility),
``category_ratios`` (S->T / T->T on the same category and cell), ``tests`` (paired sign-flip tests, Holm),
``tests_dropped`` (tests left out, with the reason) and ``figure2_cells`` (cells negative or floored), each as
CSV and Parquet. Traces are read one table at a time (:mod:`factrace.analysis.stream`).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)


def _provenance(stage: str, params: dict, **kw):
    from ..provenance import Provenance, config_hash

    return Provenance(stage=stage, config_hash=config_hash(params), extra={"params": params}, **kw)


def cmd_aie(args: argparse.Namespace) -> None:
    from .. import io
    from .aie import aggregate_aie
    from .stream import effects_from_traces

    effects = effects_from_traces(args.inputs, combine=args.combine)
    aie = aggregate_aie(effects, n_boot=args.n_boot, seed=args.seed)
    log.info("AIE over %d prompt(s): %d rows", effects["known_id"].nunique() if len(effects) else 0, len(aie))
    params = {"n_boot": args.n_boot, "seed": args.seed, "combine": args.combine}
    io.write_table(aie, args.out, "aie", _provenance("aie", params, seed=args.seed))


def write_outputs(tables: dict[str, pd.DataFrame | None], outdir: Path, prov) -> None:
    """Each table as ``<name>.parquet`` and ``<name>.csv`` in ``outdir`` (atomic writes)."""
    from .. import io

    for name, df in tables.items():
        if df is None:
            continue
        io.write_table(df, outdir / f"{name}.parquet", None, prov)
        with io.atomic_path(outdir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        log.info("%s:\n%s", name, df.to_string(index=False))


def compare_tables(aie: pd.DataFrame, effects: pd.DataFrame | None, *, min_facts: int, n_perm: int, seed: int,
                   exact_max_n: int) -> dict[str, pd.DataFrame]:
    """The tables of ``compare`` (all but the figure counts) from the AIE tables and per-fact effects."""
    from .peaks import category_peaks, category_ratios, peak_effects
    from .stats import DROPPED_COLUMNS, TEST_COLUMNS, paired_tests

    if effects is not None and len(effects):
        res = paired_tests(effects, n_perm=n_perm, seed=seed, min_facts=min_facts, exact_max_n=exact_max_n)
        tests, dropped = res.tests, res.dropped
    else:
        tests = pd.DataFrame({c: pd.Series(dtype=object) for c in TEST_COLUMNS})
        dropped = pd.DataFrame({c: pd.Series(dtype=object) for c in DROPPED_COLUMNS})
    return {
        "peaks": peak_effects(aie, min_facts=min_facts),
        "category_peaks": category_peaks(aie, min_facts=min_facts),
        "category_ratios": category_ratios(aie, min_facts=min_facts),
        "tests": tests,
        "tests_dropped": dropped,
    }


def cmd_compare(args: argparse.Namespace) -> None:
    """Figure 2, the effect-size tables and (for speech LMs) the paired T->T vs S->T tests."""
    from .. import io
    from .heatmaps import figure2_signed, figure2_with_counts
    from .stream import effects_from_traces

    aie = io.read_tables(args.aie, "aie")
    rows = [tuple(r) for r in json.loads(args.rows)]
    _paths, cells = figure2_with_counts(aie, rows, args.figure)
    if args.figure_signed:
        figure2_signed(aie, rows, args.figure_signed)
    effects = effects_from_traces(args.traces, combine=args.combine) if args.traces else None
    tables = compare_tables(aie, effects, min_facts=args.min_facts, n_perm=args.n_perm, seed=args.seed,
                            exact_max_n=args.exact_max_n)
    tables["figure2_cells"] = cells
    params = {"n_perm": args.n_perm, "seed": args.seed, "combine": args.combine, "min_facts": args.min_facts,
              "exact_max_n": args.exact_max_n}
    write_outputs(tables, Path(args.outdir), _provenance("compare", params))


def cmd_summarize(args: argparse.Namespace) -> None:
    from .summary import collect, readme_update, render_all, write_summary

    if args.results:
        summary = collect(Path(args.results))
        write_summary(summary, Path(args.out), Path(args.results))
    else:
        summary = json.loads((Path(args.out) / "summary.json").read_text())
    blocks = render_all(summary)
    if args.readme:
        changed = readme_update(Path(args.readme), blocks)
        log.info("%s: %s", args.readme, "updated" if changed else "already up to date")
    else:
        for name, text in blocks.items():
            print(f"<!-- factrace:summary {name} -->\n{text}<!-- /factrace:summary -->\n")


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("aie", help="average indirect effects with bootstrap CIs")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--n-boot", type=int, default=1000)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--combine", default="mean", choices=["mean", "max", "sum"])
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_aie)

    s = sub.add_parser("compare", help="Figure 2 grid, peak effects and paired T->T vs S->T tests")
    s.add_argument("--aie", nargs="+", required=True)
    s.add_argument("--rows", required=True, help="JSON list of [model, modality, label]")
    s.add_argument("--traces", nargs="*", default=[], help="trace tables of models traced in both modalities")
    s.add_argument("--n-perm", type=int, default=10000, help="Monte Carlo sign flips when n > --exact-max-n")
    s.add_argument("--exact-max-n", type=int, default=20, help="enumerate all 2^n sign flips up to this n")
    s.add_argument("--min-facts", type=int, default=5, help="categories with fewer facts: no peak, ratio, test")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--combine", default="mean", choices=["mean", "max", "sum"])
    s.add_argument("--figure", required=True)
    s.add_argument("--figure-signed", default=None, help="Figure 2 on the signed AIE (diverging colours)")
    s.add_argument("--outdir", required=True)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("summarize", help="README's measured tables (markdown) from results/, via a small "
                       "committed summary")
    s.add_argument("--results", default=None, help="results directory to read; without it, the summary in "
                   "--out is rendered")
    s.add_argument("--out", default="resources/demo-summary", help="directory of summary.json")
    s.add_argument("--readme", default=None, help="rewrite the marked blocks of this README in place")
    s.set_defaults(func=cmd_summarize)
