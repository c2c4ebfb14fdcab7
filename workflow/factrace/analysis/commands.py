"""The analysis commands: ``aie``, ``compare``, ``qc``, ``figure heatmaps|prompts|gap`` and ``summarize``.

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
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # the CLI imports its modules when a command runs
    from factrace.analysis.rows import Untraced

log = logging.getLogger(__name__)


def _provenance(stage: str, params: dict, **kw):
    from factrace.core.provenance import stage_provenance

    return stage_provenance(stage, params, **kw)


def cmd_aie(args: argparse.Namespace) -> None:
    from factrace.analysis.aie import aggregate_aie, with_windows
    from factrace.analysis.stream import effects_from_traces, windows_from_traces
    from factrace.core import io

    effects = effects_from_traces(args.inputs, combine=args.combine)
    aie = with_windows(aggregate_aie(effects, n_boot=args.n_boot, seed=args.seed), windows_from_traces(args.inputs))
    log.info("AIE over %d prompt(s): %d rows", effects["known_id"].nunique() if len(effects) else 0, len(aie))
    params = {"n_boot": args.n_boot, "seed": args.seed, "combine": args.combine}
    io.write_table(aie, args.out, "aie",
                   _provenance("aie", params, seed=args.seed, **io.carried_identity(args.inputs)))


def write_outputs(tables: dict[str, pd.DataFrame | None], outdir: Path, prov) -> None:
    """Each table as ``<name>.parquet`` and ``<name>.csv`` in ``outdir`` (atomic writes)."""
    from factrace.core import io

    for name, df in tables.items():
        if df is None:
            continue
        io.write_table(df, outdir / f"{name}.parquet", None, prov)
        with io.atomic_path(outdir / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        log.info("%s:\n%s", name, df.to_string(index=False))


def compare_tables(aie: pd.DataFrame, effects: pd.DataFrame | None, *, min_facts: int, n_perm: int, seed: int,
                   exact_max_n: int, untraced: Untraced | None = None) -> dict[str, pd.DataFrame]:
    """The tables of ``compare`` (all but the figure counts) from the AIE tables and per-fact effects;
    ``untraced`` (:func:`factrace.analysis.rows.untraced_sets`): the S->T fact sets without a traced fact, each a
    ``no facts`` row of ``tests_dropped``."""
    from factrace.analysis.peaks import category_peaks, category_ratios, peak_effects
    from factrace.analysis.stats import DROPPED_COLUMNS, TEST_COLUMNS, paired_tests, untraced_tests

    if effects is not None and len(effects):
        res = paired_tests(effects, n_perm=n_perm, seed=seed, min_facts=min_facts, exact_max_n=exact_max_n)
        tests, dropped = res.tests, res.dropped
    else:
        tests = pd.DataFrame({c: pd.Series(dtype=object) for c in TEST_COLUMNS})
        dropped = pd.DataFrame({c: pd.Series(dtype=object) for c in DROPPED_COLUMNS})
    if untraced:
        extra = untraced_tests(untraced)
        dropped = pd.concat([dropped, extra], ignore_index=True) if len(dropped) else extra
    return {
        "peaks": peak_effects(aie, min_facts=min_facts),
        "category_peaks": category_peaks(aie, min_facts=min_facts),
        "category_ratios": category_ratios(aie, min_facts=min_facts),
        "tests": tests,
        "tests_dropped": dropped,
    }


def _untraced(path: str | None) -> Untraced | None:
    """The fact sets without a traced fact (:func:`factrace.analysis.rows.untraced_sets`) of the QC fates table at
    ``path`` (``factrace qc --fates``), its columns checked; None without a path."""
    from factrace.analysis.rows import untraced_sets
    from factrace.core import io
    from factrace.core.contracts import ContractError

    if not path:
        return None
    fates = io.read_table(path)
    missing = sorted({"model", "modality", "fate", "reason"} - set(fates.columns))
    if missing:
        raise ContractError(f"{path}: no column {', '.join(missing)}; it is not a QC fates table (rule qc, "
                            "`factrace qc --fates`): remove it and rerun the workflow")
    return untraced_sets(fates)


def cmd_compare(args: argparse.Namespace) -> None:
    """Figure 2, the effect-size tables and (for speech LMs) the paired T->T vs S->T tests."""
    from factrace.analysis.figures.heatmaps import figure2_signed, figure2_with_counts
    from factrace.analysis.stream import effects_from_traces
    from factrace.core import io

    aie = io.read_tables(args.aie, "aie")
    rows = [tuple(r) for r in json.loads(args.rows)]
    untraced = _untraced(args.fates)
    _paths, cells = figure2_with_counts(aie, rows, args.figure, untraced)
    if args.figure_signed:
        figure2_signed(aie, rows, args.figure_signed, untraced)
    effects = effects_from_traces(args.traces, combine=args.combine) if args.traces else None
    tables = compare_tables(aie, effects, min_facts=args.min_facts, n_perm=args.n_perm, seed=args.seed,
                            exact_max_n=args.exact_max_n, untraced=untraced)
    tables["figure2_cells"] = cells
    params = {"n_perm": args.n_perm, "seed": args.seed, "combine": args.combine, "min_facts": args.min_facts,
              "exact_max_n": args.exact_max_n}
    write_outputs(tables, Path(args.outdir),
                  _provenance("compare", params, **io.carried_identity([*args.aie, *(args.traces or [])])))


def cmd_seeds_table(args: argparse.Namespace) -> int:
    from factrace.analysis.seeds import main

    return main(args)


def cmd_summarize(args: argparse.Namespace) -> None:
    from factrace.analysis.summary import FIGURE_TABLE, collect, readme_update, render_all, write_summary

    if args.results:
        before = Path(args.out) / "summary.json"
        summary = collect(Path(args.results), json.loads(before.read_text()) if before.exists() else None,
                          args.tables)
        # Figure 2's copies belong to the run of its table: --tables without it keeps them as they were
        figures = args.tables is None or FIGURE_TABLE in args.tables
        write_summary(summary, Path(args.out), Path(args.results) if figures else None)
    else:
        summary = json.loads((Path(args.out) / "summary.json").read_text())
    blocks = render_all(summary)
    if args.readme:
        changed = readme_update(Path(args.readme), blocks)
        log.info("%s: %s", args.readme, "updated" if changed else "already up to date")
    else:
        for name, text in blocks.items():
            print(f"<!-- factrace:summary {name} -->\n{text}<!-- /factrace:summary -->\n")


def cmd_qc(args: argparse.Namespace) -> None:
    from factrace.analysis.qc import fact_fates, parse_caps, parse_model_dirs, qc_table, read_traced
    from factrace.core import io
    from factrace.speechlm.fact_sets import fact_sets

    prompts = io.read_tables(args.prompts, "prompts")
    filters = io.read_tables(args.filters, "filter")
    traces = read_traced(args.traces)
    caps = parse_caps(args.max_facts_per_shard or [])
    dirs = parse_model_dirs(getattr(args, "fact_sets", None) or [])
    sets = {m: fact_sets(d) for m, d in dirs.items()}
    fates = fact_fates(prompts, filters, traces, caps, sets)
    table = qc_table(prompts, filters, traces, fates)
    with io.atomic_path(args.out) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    if args.fates:
        params = {"max_facts_per_shard": caps, "fact_sets": dirs}
        made_from = [*(args.filters or []), *(args.traces or [])]
        io.write_table(fates, args.fates, None, _provenance("qc_fates", params, **io.carried_identity(made_from)))
    log.info("QC:\n%s", table.to_string(index=False))


def cmd_figure_heatmaps(args: argparse.Namespace) -> None:
    import shutil
    import tempfile

    from factrace.analysis.figures.traces import aie_heatmaps
    from factrace.core import io

    aie = io.read_table(args.aie, "aie")
    scale = io.read_tables(args.scale_from, "aie") if args.scale_from else None
    labels = {str(m): args.label for m in aie["model"].unique()} if args.label else None
    untraced = _untraced(args.fates)
    out = Path(args.out)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        written = aie_heatmaps(aie, Path(tmp) / "aie", labels=labels, scale_df=scale, untraced=untraced)
        if len(written) != 1:
            raise SystemExit(f"{args.aie}: expected one (model, modality), found {sorted(written)}")
        for path in next(iter(written.values())):
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), out.with_suffix(path.suffix))


def cmd_figure_prompts(args: argparse.Namespace) -> None:
    from factrace.analysis.figures.traces import prompt_facts, prompt_trace_plots
    from factrace.core import io

    trace = io.read_tables(args.traces, "trace")
    maps = [p for p in args.token_map if p]
    facts = prompt_facts(io.read_tables(args.prompts, "prompts") if args.prompts else None,
                         io.read_tables(args.filters, "filter") if args.filters else None)
    prompt_trace_plots(trace, io.read_tables(maps) if maps else None, Path(args.outdir), args.prefix, args.n,
                       args.combine, facts=facts)


def cmd_figure_gap(args: argparse.Namespace) -> None:
    from factrace.analysis.figures.traces import modality_gap_plot
    from factrace.core import io

    gap = io.read_table(args.gap)
    labels = {"last_subject": "last subject", "last": "last token"}
    gap = gap.assign(position=gap["position_kind"].map(labels).fillna(gap["position_kind"]))
    modality_gap_plot(gap, args.out, n_boot=args.n_boot, seed=args.seed, label=args.label)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("aie", help="average indirect effects with bootstrap CIs")
    s.add_argument("--inputs", nargs="+", required=True, help="trace tables of one (model, modality, kind)")
    s.add_argument("--n-boot", type=int, required=True, help="aggregate.n_boot")
    s.add_argument("--seed", type=int, required=True, help="seed")
    s.add_argument("--combine", required=True, choices=["mean", "max", "sum"], help="aggregate.combine")
    s.add_argument("--out", required=True, help="the `aie` parquet to write")
    s.set_defaults(func=cmd_aie)

    s = sub.add_parser("compare", help="Figure 2 grid, peak effects and paired T->T vs S->T tests")
    s.add_argument("--aie", nargs="+", required=True, help="`aie` tables of the models and modalities compared")
    s.add_argument("--rows", required=True, help="JSON list of [model, modality, label]")
    s.add_argument("--traces", nargs="*", default=[], help="trace tables of models traced in both modalities")
    s.add_argument("--fates", default=None,
                   help="the QC fates (qc/fates.parquet): a fact set with no traced fact is drawn and listed with "
                        "n = 0 and the reason")
    s.add_argument("--n-perm", type=int, required=True,
                   help="aggregate.n_perm: Monte Carlo sign flips when n > --exact-max-n")
    s.add_argument("--exact-max-n", type=int, required=True,
                   help="aggregate.exact_max_n: enumerate all 2^n sign flips up to this n")
    s.add_argument("--min-facts", type=int, required=True,
                   help="aggregate.min_facts: categories with fewer facts get no peak, ratio or test")
    s.add_argument("--seed", type=int, required=True, help="seed")
    s.add_argument("--combine", required=True, choices=["mean", "max", "sum"], help="aggregate.combine")
    s.add_argument("--figure", required=True, help="Figure 2 (PNG; a PDF is written beside it)")
    s.add_argument("--figure-signed", default=None, help="Figure 2 on the signed AIE (diverging colours)")
    s.add_argument("--outdir", required=True, help="directory for the comparison tables (.parquet and .csv)")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("seeds-table", help="the miniature across seeds (make seeds): each run's peaks and build "
                       "measures side by side with their spread; prints the table and a JSON line")
    s.add_argument("--runs", nargs="+", required=True, help="results folders named seed-N (results/seeds/seed-N)")
    s.add_argument("--out", required=True, help="the table (TSV) to write (results/seeds/seeds.tsv)")
    s.set_defaults(func=cmd_seeds_table)
    s = sub.add_parser("summarize", help="README's measured tables (markdown) from results/, via a small "
                       "committed summary")
    s.add_argument("--results", default=None, help="results directory to read; without it, the summary in "
                   "--out is rendered")
    s.add_argument("--out", default="resources/demo-summary", help="directory of summary.json")
    s.add_argument("--readme", default=None, help="rewrite the marked blocks of this README in place")
    s.add_argument("--tables", nargs="+", default=None, metavar="NAME",
                   help="re-make only these tables (for example demo-sweep after make sweep) and keep the others "
                   "as the summary has them")
    s.set_defaults(func=cmd_summarize)

    s = sub.add_parser("qc", help="facts counted at each stage with the reasons they left")
    s.add_argument("--prompts", nargs="+", required=True, help="`prompts` parquets (every shard)")
    s.add_argument("--filters", nargs="+", required=True, help="`filter` parquets (every model, modality, shard)")
    s.add_argument("--traces", nargs="+", required=True, help="trace tables (every model, modality, kind, shard)")
    s.add_argument("--out", required=True, help="the QC TSV to write (facts counted at each stage)")
    s.add_argument("--fates", help="Parquet: one row per fact x model x modality with its fate and reason")
    s.add_argument("--max-facts-per-shard", nargs="*", default=None, metavar="MODEL=N",
                   help="each capped model's traced facts per shard (models.<m>.max_facts_per_shard or "
                        "tracing.max_facts_per_shard); a model not named: every kept fact")
    s.add_argument("--fact-sets", nargs="*", default=None, metavar="MODEL=DIR",
                   help="each S->T model's checkpoint directory: its facts.parquet's speech_set gives every S->T "
                        "fact's fact_set (heard / text_only), dropped facts included; a model not named, or "
                        "without that record: `all`")
    s.set_defaults(func=cmd_qc)

    fig = sub.add_parser("figure", help="figures").add_subparsers(dest="figure", required=True)
    s = fig.add_parser("heatmaps", help="log-AIE heatmaps per kind")
    s.add_argument("--aie", required=True, help="the `aie` table of one (model, modality)")
    s.add_argument("--label", default=None, help="models.<name>.label: how the panels name the model")
    s.add_argument("--scale-from", nargs="*", default=[], help="the AIE tables whose range each kind's colour "
                   "scale spans (all of them: Figure 2's scale); without them, --aie's")
    s.add_argument("--fates", default=None,
                   help="the QC fates (qc/fates.parquet): a fact set with no traced fact is drawn with n = 0 and why")
    s.add_argument("--out", required=True, help="PNG path; a PDF is written beside it")
    s.set_defaults(func=cmd_figure_heatmaps)

    s = fig.add_parser("prompts", help="per-prompt trace plots")
    s.add_argument("--traces", nargs="+", required=True, help="trace tables of one (model, modality)")
    s.add_argument("--n", type=int, required=True, help="figures.prompt_plots")
    s.add_argument("--combine", required=True, choices=["mean", "max", "sum"], help="aggregate.combine")
    s.add_argument("--outdir", required=True, help="directory for the plots")
    s.add_argument("--prefix", required=True, help="file name prefix: <prefix>_known<id>.png")
    s.add_argument("--token-map", nargs="*", default=[], help="S->T: token maps, to label speech tokens with words")
    s.add_argument("--prompts", nargs="*", default=[], help="prompts tables: each plot is titled with its prompt "
                   "and attribute")
    s.add_argument("--filters", nargs="*", default=[], help="this model and modality's filter tables: the traced "
                   "target token in the title")
    s.set_defaults(func=cmd_figure_prompts)

    s = fig.add_parser("gap", help="modality gap per layer (cosine and Euclidean)")
    s.add_argument("--gap", required=True, help="the modality-gap parquet (modality-gap)")
    s.add_argument("--label", default=None, help="models.<name>.label: how the title names the model")
    s.add_argument("--n-boot", type=int, required=True, help="aggregate.n_boot: bootstrap resamples of the CI band")
    s.add_argument("--seed", type=int, required=True, help="seed")
    s.add_argument("--out", required=True, help="PNG path; a PDF is written beside it")
    s.set_defaults(func=cmd_figure_gap)
