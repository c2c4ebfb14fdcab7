"""README's measured tables, generated: ``results/`` -> a small committed summary -> markdown blocks.

:func:`collect` reads a finished run's result files into ``summary.json`` (only what README shows, formatted, each
table naming its files); :func:`render_all` and :func:`readme_update` write each table between its markers in
README (``<!-- factrace:summary NAME -->`` ... ``<!-- /factrace:summary -->``). Rows are named as in Figure 2
(:mod:`factrace.analysis.rows`). ``make numbers`` does both (``factrace summarize --results results --out
resources/demo-summary --readme README.md``); run twice on the same results it changes nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factrace.analysis.markdown import Table, readme_blocks, readme_update, render
from factrace.analysis.markdown import acc as _acc
from factrace.analysis.markdown import dig as _get
from factrace.analysis.markdown import num as _g
from factrace.analysis.markdown import pct as _pct
from factrace.analysis.markdown import ratio as _ratio
from factrace.analysis.markdown import table as _table
from factrace.analysis.rows import (
    ALL,
    FACT_SET_WORDS,
    ordered,
    row_name,
    traced_per_set,
    untraced_sets,
    with_fact_set,
)
from factrace.analysis.seeds import readme_table as seeds_readme_table

log = logging.getLogger(__name__)

FIGURES = ("figure2.png", "figure2_signed.png")
FIGURE_TABLE = "demo-figure2"  # the table of the run whose FIGURES are copied


def _read_parquets(paths: list[Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _facts(res: Path) -> Table | None:
    rows = []
    fates = res / "qc" / "fates.parquet"  # a fact set none of whose facts was traced counts 0, not absent
    untraced = untraced_sets(pd.read_parquet(fates)) if fates.exists() else {}
    for d in sorted(p for p in res.glob("filter/*/*") if p.is_dir()):
        filt = _read_parquets(sorted(d.glob("*.parquet")))
        if filt.empty:
            continue
        model, modality = d.parent.name, d.name
        aie_path = res / "aie" / model / f"{modality}.parquet"
        traced = traced_per_set(pd.read_parquet(aie_path), untraced.get((model, modality))) \
            if aie_path.exists() else None
        m = filt["match"].value_counts()
        rows.append([model, modality, str(len(filt)), str(int(filt["kept"].sum())), str(int(m.get("exact", 0))),
                     str(int(m.get("partial", 0))), str(int(m.get("none", 0))),
                     traced if isinstance(traced, str) else _g(traced)])
    if not rows:
        return None
    return _table(["model", "modality", "facts", "kept", "exact", "partial", "none", "traced"], rows,
                  ["results/filter/*/*/shard-*.parquet", "results/aie/*/*.parquet (traced = largest n)"])


def _speechlm_rows(name: str, ev: dict[str, Any]) -> list[list[str]]:
    """The build evaluation's measures, one row each (eval.json keys in the row's name). Wall-clock times
    (``timing_s``) are left out: they differ between two runs of the same commit, and README's generated tables
    must not (`factrace timings` shows where a run's time went)."""
    label = f"speech LM `{name}`"
    if ev.get("stage") == "backbone":
        rows = [[f"backbone `{name}`: text accuracy, {s} facts (`text.{s}`)", _acc(_get(ev, f"text.{s}"))]
                for s in ("traced", "extra") if _get(ev, f"text.{s}") is not None]
        rows.append([f"backbone `{name}`: T->T p_corrupted / p_clean (`noise_t2t`)", _ratio(ev.get("noise_t2t"))])
        return rows
    rows = [[f"{label}: text accuracy (`text`)", _acc(ev.get("text"))]]
    roles = {"train": "trained rendering", "held_out": "held-out rendering", "unheard": "unheard voice"}
    for rendering, r in sorted(ev.get("speech", {}).items(), key=lambda kv: list(roles).index(kv[1].get("role"))
                               if kv[1].get("role") in roles else len(roles)):
        role = roles.get(r.get("role"), r.get("role"))
        main = " (main, traced)" if rendering == ev.get("main_rendering") else ""
        rows.append([f"{label}: speech accuracy, {role} {rendering}{main} (`speech`)", _acc(r)])
    by_margin = _get(ev, "ablation.random_units_accuracy_by_margin") or {}
    for margin, r in sorted(by_margin.items(), key=lambda kv: int(kv[0])):
        what = f"{label}: subject's units random, range widened by {margin} (`ablation.random_units_accuracy_by_margin`)"
        got = f"{_pct(r['mean'])} right ({_g(_get(ev, 'ablation.draws'))} draws, {_g(_get(ev, 'ablation.n_facts'))} facts)"
        rows.append([what, got])
    swap = _get(ev, "ablation.swap") or {}
    rows.append([f"{label}: another subject of the template swapped in: answer follows it (`ablation.swap`)",
                 f"{_pct(swap.get('followed'))} ({swap.get('n')} facts)"])
    rows.append([f"{label}: T->T p_corrupted / p_clean (`noise_t2t`)", _ratio(ev.get("noise_t2t"))])
    rows.append([f"{label}: S->T p_corrupted / p_clean (`noise_s2t`)", _ratio(ev.get("noise_s2t"))])
    if "noise_s2t_at_t2t_multiplier" in ev:
        rows.append([f"{label}: S->T under the T->T multiplier (`noise_s2t_at_t2t_multiplier`)",
                     _ratio(ev["noise_s2t_at_t2t_multiplier"])])
    co, nh, t = ev.get("carry_over") or {}, ev.get("never_heard") or {}, f"{label}: text-only facts"
    for what, key in (("the backbone answers in text", "backbone_text"), ("speech (carry-over), main rendering",
                      "speech"), ("speech, held-out rendering", "speech_held_out"), ("text", "speechlm_text"),
                      ("chance: the template's most frequent heard answer", "template_prior")):
        if key in co:  # facts learnt in text only (carry-over), beside its chance levels
            rows.append([f"{t}{'' if key == 'backbone_text' else ' the backbone knows'}, {what} (`carry_over.{key}`)",
                         _acc(co[key])])
    if "random_units" in co:
        rows.append([f"{t}, chance: subject's units random (`carry_over.random_units`)", f"{_pct(co['random_units'])} right"])
    if "speech" in nh:
        rows.append([f"{label}: never-heard facts the backbone knows, speech (`never_heard.speech`)", _acc(nh["speech"])])
    return rows


def _speech(res: Path) -> Table | None:
    rows, sources = [], []
    wer = res / "speech" / "wer.json"
    if wer.exists():
        w = json.loads(wer.read_text())
        rows.append(["ASR check: corpus WER", (f"{_pct(w.get('corpus_wer'))} ({w.get('n_utterances')} prompts; "
                     f"median per prompt {_pct(w.get('median_wer'))})")])
        sources.append("results/speech/wer.json")
    dis = res / "speech" / "alignment_disagreement.tsv"
    if dis.exists():
        for r in pd.read_csv(dis, sep="\t").itertuples():
            rows.append([f"word onsets, {r.method} vs {r.reference}",
                         f"median {_g(r.median_ms)} ms, p95 {_g(r.p95_ms)} ms ({r.n} words)"])
        sources.append("results/speech/alignment_disagreement.tsv")
    for ev in sorted(res.glob("speechlm/*/*eval.json")):  # backbone_eval.json (stage 1), eval.json (stage 2)
        rows.extend(_speechlm_rows(ev.parent.name, json.loads(ev.read_text())))
        sources.append(f"results/speechlm/{ev.parent.name}/{ev.name}")
    return _table(["what", "measured"], rows, sources) if rows else None


def _noise(res: Path) -> Table | None:
    rows = []
    for p in sorted(res.glob("noise/*/*.json")):
        n = json.loads(p.read_text())
        reached = n.get("reached")
        rows.append([p.parent.name, p.stem, _g(n.get("std"), 4), _g(n.get("std_rome"), 4),
                     _g(n.get("std_over_rome"), 4), _g(n.get("multiplier")), _g(n.get("median_ratio"), 3),
                     "-" if reached is None else "yes" if reached else "no (largest tried)",
                     _g(n.get("scale"), 4), _g(n.get("n_facts")), _g(n.get("n_traced_facts"))])
    if not rows:
        return None
    return _table(["model", "modality", "std (subjects in the prompts)", "std (ROME: subjects alone)",
                   "ratio", "multiplier", "median p_corrupted / p_clean", "target reached", "noise scale",
                   "facts (std)", "traced facts (multiplier)"], rows, ["results/noise/*/*.json"],
                  "The noise is multiplier x the first std; ROME's value (text only) is measured beside it. The "
                  "multiplier is computed per model and modality: the first of tracing.noise_multiplier and the "
                  "tracing.noise_grid values above it under which the median p_corrupted / p_clean of the traced "
                  "facts is at most tracing.noise_target_ratio.")


def _peaks(res: Path) -> Table | None:
    p = res / "compare" / "peaks.csv"
    if not p.exists():
        return None
    df = with_fact_set(pd.read_csv(p))
    rows = [[r.model, row_name(r.modality, r.fact_set), r.kind, f"{_g(r.peak_aie)} ({_g(r.ci_low)}-{_g(r.ci_high)})",
             f"{r.peak_category}, layer {r.peak_layer}", _g(int(r.n)), _g(r.ratio_of_grid_maxima),
             str(r.categories_below_min_facts) if isinstance(r.categories_below_min_facts, str) else ""]
            for r in df.itertuples()]
    min_facts = int(df["min_facts"].iloc[0]) if len(df) else None
    return _table(["model", "modality", "kind", "grid max AIE (95% CI)", "at", "n", "ratio of grid maxima to T->T",
                   f"left out (n < {min_facts})"], rows, ["results/compare/peaks.csv"],
                  "A ratio of grid maxima compares the largest cells wherever they are; per-category ratios on the "
                  "same cells are in the next table.")


def _ratios(res: Path) -> Table | None:
    p = res / "compare" / "category_ratios.csv"
    if not p.exists():
        return None
    df = with_fact_set(pd.read_csv(p))
    rows = [[_model_set(r.model, r.fact_set), r.kind, r.category, f"{r.n_t2t} / {r.n_s2t}",
             f"{_g(r.t2t_peak_aie)} (L{r.t2t_peak_layer})", f"{_g(r.s2t_peak_aie)} (L{r.s2t_peak_layer})",
             _g(r.ratio_of_category_peaks), _g(r.ratio_same_cell)]
            for r in df.itertuples()]
    return _table(["model", "kind", "category", "n T->T / S->T", "T->T peak (layer)", "S->T peak (layer)",
                   "S->T / T->T, category peaks", "S->T / T->T, same cell"], rows,
                  ["results/compare/category_ratios.csv"],
                  "Same cell: the S->T AIE at the layer and category of the T->T peak, over the T->T peak.")


def _model_set(model: str, fact_set: str) -> str:
    """A model named with its S->T fact set (tables without a modality column): ``slm``, ``slm, S->T facts
    learnt in text only``."""
    return model if fact_set == ALL else f"{model}, S->T {FACT_SET_WORDS.get(fact_set, fact_set)}"


def _tests(res: Path) -> Table | None:
    p, d = res / "compare" / "tests.csv", res / "compare" / "tests_dropped.csv"
    if not p.exists():
        return None
    t = with_fact_set(pd.read_csv(p))
    dropped = pd.read_csv(d) if d.exists() else pd.DataFrame(columns=["reason"])
    methods = ", ".join(f"{m} ({int(g['n_perm'].iloc[0])} sign vectors at n = {int(g['n'].iloc[0])})"
                        if m == "exact" else f"{m} ({int(g['n_perm'].iloc[0])} draws)"
                        for m, g in t.groupby("method")) if len(t) else "none"
    reasons = dropped["reason"].value_counts().to_dict() if len(dropped) else {}
    rows = [["tests kept (Holm family)", str(len(t))], ["method", methods],
            ["rejected at Holm 0.05", str(int(t["reject"].sum())) if len(t) else "0"],
            ["dropped", f"{len(dropped)}" + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
                                             + ")" if reasons else "")],
            ["smallest p (Holm)", _g(t["p_holm"].min(), 2) if len(t) else "-"]]
    sets = ordered(t["fact_set"]) if len(t) else []
    for fs in sets if set(sets) - {ALL} else []:  # a model with fact sets: each set's tests in brief
        g = t[t["fact_set"] == fs]
        rows.append([f"S->T {FACT_SET_WORDS.get(fs, fs)}: tests kept, rejected at Holm 0.05, smallest p (Holm)",
                     f"{len(g)}, {int(g['reject'].astype(bool).sum())}, {_g(g['p_holm'].min(), 2)}"])
    for r in t[t["reject"].astype(bool)].itertuples() if len(t) else []:
        rows.append([(f"rejected: {_model_set(r.model, r.fact_set)} {r.kind} {r.category} {r.band} "
                      f"(L{r.layer_first}-{r.layer_last})"),
                     (f"n = {r.n}, T->T {_g(r.mean_a)} vs S->T {_g(r.mean_b)}, p = {_g(r.p_value, 2)}, "
                     f"Holm {_g(r.p_holm, 2)}")])
    return _table(["paired T->T vs S->T sign-flip tests", "value"], rows,
                  ["results/compare/tests.csv", "results/compare/tests_dropped.csv"])


def _cells(res: Path) -> Table | None:
    p = res / "compare" / "figure2_cells.csv"
    if not p.exists():
        return None
    df = pd.read_csv(p)
    rows = [[r.row, r.kind, str(r.cells), str(r.negative), str(r.floored)] for r in df.itertuples()]
    return _table(["Figure 2 row", "kind", "cells", "negative (hatched)", "in [0, 1e-4) (at the floor)"], rows,
                  ["results/compare/figure2_cells.csv"])


def _category_n(res: Path) -> Table | None:
    p = res / "compare" / "category_peaks.csv"
    if not p.exists():
        return None
    df = pd.read_csv(p)
    if df.empty:
        return None
    df = with_fact_set(df)
    df["same_cells_as"] = df["same_cells_as"].fillna("")
    g = df.groupby(["model", "modality", "fact_set", "category"], sort=False).agg(
        n=("n", "max"), eligible=("eligible", "all"), same=("same_cells_as", "first")).reset_index()
    rows = [[r.model, row_name(r.modality, r.fact_set), r.category + (f" (= {r.same})" if r.same else ""), str(int(r.n)),
             "yes" if r.eligible else "no (drawn only)"] for r in g.itertuples()]
    return _table(["model", "modality", "category", "n facts", "in peaks, ratios, tests"], rows,
                  ["results/compare/category_peaks.csv"])


def _gap(res: Path) -> Table | None:
    rows, sources = [], []
    for p in sorted(res.glob("gap/*.parquet")):
        g = pd.read_parquet(p)
        if g.empty:
            continue
        m = g.groupby(["model", "position_kind", "layer"], sort=True).agg(
            cosine=("cosine", "mean"), euclidean=("euclidean", "mean"), n=("known_id", "nunique")).reset_index()
        rows += [[r.model, str(r.position_kind).replace("_", " "), str(r.layer), _g(r.cosine), _g(r.euclidean),
                  str(r.n)] for r in m.itertuples()]
        sources.append(f"results/gap/{p.name}")
    if not rows:
        return None
    return _table(["model", "position", "layer", "cosine (text vs speech)", "Euclidean distance", "facts"], rows,
                  sources, "Means over facts of the hidden states' similarity at the same position in the two "
                  "modalities.")


def _sweep(res: Path) -> Table | None:
    """`make sweep`'s table: carry-over against the offline speech LM's build settings."""
    p = res / "sweep" / "speechlm_sweep.tsv"
    if not p.exists():
        return None
    cols = ["name", "seed", "layers", "steps", "trainable_layers", "align_weight", "prefix_fraction",
            "transcript_fraction", "arithmetic", "speech_heard", "carry_over", "carry_over_n", "chance_template_prior",
            "chance_random_units", "never_heard", "random_units_heard", "swap_followed_heard", "multiplier_s2t"]
    df = pd.read_csv(p, sep="\t")
    cols = [c for c in cols if c in df]
    return _table(cols, [[v if isinstance(v, str) else _g(v) for v in r] for r in df[cols].itertuples(index=False)],
                  ["results/sweep/speechlm_sweep.tsv"])


def _timings(res: Path) -> Table | None:
    """`make demo`'s time: set-up, workflow, and per stage (``factrace timings``' JSON line)."""
    p = res / "timings.json"
    if not p.exists():
        return None
    t = json.loads(p.read_text())
    stages = t["stages"]
    total = sum(s["job_seconds"] for s in stages) or 1.0
    rows = [[s["stage"], str(s["jobs"]), f"{s['job_seconds']:.0f}", f"{s['job_seconds'] / total:.0%}",
             f"{s['longest_rule']} {s['longest_job_s']:.0f} s", f"{s['max_rss_mb']:.0f}"] for s in stages]
    rows.append(["all", str(sum(s["jobs"] for s in stages)), f"{total:.0f}", "", "", ""])
    note = "Job seconds sum the jobs' wall times (jobs ran side by side, so they can exceed the clock)."
    elapsed, setup = t.get("elapsed_s"), t.get("setup_s")
    if elapsed is not None:
        whole = (setup or 0.0) + elapsed
        note += f" The workflow took {elapsed:.0f} s on the clock" + (".", (
            f"; with the set-up of `.venv` ({setup:.0f} s) `make demo` took {whole // 60:.0f} min {whole % 60:.0f} s."
        ))[setup is not None]
    return _table(["stage", "jobs", "job s", "share", "longest job", "peak MB"], rows, ["results/timings.json"], note)


def _dtype(res: Path) -> Table | None:
    """`make dtype-check`'s table: the default's bf16 traces against float32, per Figure 2 row and kind."""
    p = res / "float32" / "dtype_compare.tsv"
    if not p.exists():
        return None
    df = pd.read_csv(p, sep="\t")  # a row not compared has its fields empty (NaN): shown as "-"

    def count(v: Any) -> str:
        return "-" if pd.isna(v) else str(int(v))

    def cell(v: Any) -> str:
        if isinstance(v, str):  # a peak's cell
            return v
        if pd.isna(v):
            return "-"
        return ("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else _g(float(v))

    rows = [[f"{r.model} {row_name(r.modality, r.fact_set) if isinstance(r.fact_set, str) else r.modality}",
             cell(r.kind), f"{r.dtype} vs {cell(r.reference_dtype)}",
             f"{count(r.n_common)} ({count(r.n_traced)} / {count(r.n_reference)})",
             *(cell(v) for v in (r.max_aie_diff, r.peak, r.reference_peak, r.same_peak, r.peak_gap,
                                 r.max_p_clean_diff)), r.reason if isinstance(r.reason, str) else ""]
            for r in df.itertuples(index=False)]
    return _table(["row", "kind", "dtypes", "facts compared (traced / float32 run)", "largest mean-AIE difference",
                   "peak (bf16 run)", "peak (float32 run)", "same cell", "float32 AIE lost at bf16's peak",
                   "largest p_clean difference of a fact", "note"], rows, ["results/float32/dtype_compare.tsv"])


COLLECTORS = {"demo-facts": _facts, "demo-speech": _speech, "demo-noise": _noise, "demo-categories": _category_n,
              "demo-peaks": _peaks, "demo-ratios": _ratios, "demo-tests": _tests, FIGURE_TABLE: _cells,
              "demo-gap": _gap, "demo-sweep": _sweep, "demo-seeds": seeds_readme_table, "demo-timings": _timings,
              "demo-dtype": _dtype}


#: where each table comes from, named in its place when the run has no such file
EXPECTED = {"demo-facts": "results/filter/*/*/shard-*.parquet", "demo-speech": "results/speech/wer.json",
            "demo-noise": "results/noise/*/*.json", "demo-categories": "results/compare/category_peaks.csv",
            "demo-peaks": "results/compare/peaks.csv", "demo-ratios": "results/compare/category_ratios.csv",
            "demo-tests": "results/compare/tests.csv", FIGURE_TABLE: "results/compare/figure2_cells.csv",
            "demo-gap": "results/gap/*.parquet", "demo-sweep": "results/sweep/speechlm_sweep.tsv",
            "demo-seeds": "results/seeds/seeds.tsv", "demo-timings": "results/timings.json",
            "demo-dtype": "results/float32/dtype_compare.tsv"}


#: tables of their own make targets (`make sweep`, `make seeds`, `make dtype-check`), not of `make demo`: when a
#: run lacks their source, the previous summary's table is kept, and says so
OWN_TARGET = ("demo-sweep", "demo-seeds", "demo-dtype")
KEPT = "Kept from the previous summary: its command was not re-run on these results."


def collect(results: Path, previous: dict[str, Any] | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """The summary of a finished run: {"tables": {name: table}}, one per collector; a table whose source the
    run lacks has no columns and says so when rendered, except an :data:`OWN_TARGET` table that ``previous`` (the
    summary before) has: it is kept, with :data:`KEPT` in its note. ``only``: re-make just these tables from
    ``results`` and keep every other one of ``previous`` as it was (``make numbers TABLES=demo-sweep``)."""
    tables = {}
    before = (previous or {}).get("tables", {})
    if only is not None:
        missing = sorted(set(only) - set(COLLECTORS)) or sorted(set(COLLECTORS) - set(only) - set(before))
        if missing:
            raise ValueError(f"no such table, or none before to keep: {missing} (the tables: {sorted(COLLECTORS)})")
        tables = {n: fn(Path(results)) if n in only else before[n] for n, fn in COLLECTORS.items()}
        if absent := [f"{n} ({EXPECTED[n]})" for n in only if tables[n] is None]:
            raise ValueError(f"{results}: no source for {absent}; run their commands first")
        return {"tables": tables}
    for name, fn in COLLECTORS.items():
        t = fn(Path(results))
        if t is None and name in OWN_TARGET and before.get(name, {}).get("columns"):
            t = dict(before[name])
            if KEPT not in (t.get("note") or ""):
                t["note"] = " ".join(x for x in (t.get("note"), KEPT) if x)
        if t is None:
            log.warning("summary: no source for %s in %s", name, results)
            t = _table([], [], [EXPECTED[name]], "Not in this run: no such result file.")
        tables[name] = t
    return {"tables": tables}


def write_summary(summary: dict[str, Any], out: Path, results: Path | None = None) -> Path:
    """``out/summary.json`` (sorted keys, so the same results give the same bytes); copies Figure 2 and its
    signed twin from ``results/figures`` when given."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "summary.json"
    text = json.dumps(summary, indent=1, sort_keys=True) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    if results is not None:
        for name in FIGURES:
            src = Path(results) / "figures" / name
            if src.exists() and (not (out / name).exists() or (out / name).read_bytes() != src.read_bytes()):
                shutil.copyfile(src, out / name)
    return path


def render_all(summary: dict[str, Any]) -> dict[str, str]:
    return {name: render(t) for name, t in summary["tables"].items()}


__all__ = ["collect", "readme_blocks", "readme_update", "render", "render_all", "write_summary"]
