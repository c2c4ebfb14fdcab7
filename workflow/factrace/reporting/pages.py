"""Self-contained HTML pages (no scripts, no external files) that the Snakemake report shows inline.

:func:`tables_page` renders CSV / TSV / Parquet / JSON tables, one section each (a fates table also gets its
counts per model, modality and fate); :func:`images_page` embeds PNGs as data URIs. :func:`landing_rst` writes the
body of the report's landing page (Figure 2, what each of its rows is, the headline tables) as reStructuredText,
which ``workflow/report/workflow.rst`` includes; :func:`landing_page` is the same as an HTML page.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from factrace.analysis.rows import (
    ALL,
    FACT_SET_WORDS,
    fact_set_rank,
    row_counts,
    split_rows,
    untraced_sets,
    with_fact_set,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# Tables fit the page: each sits in a container that scrolls sideways (its first column stays in view), column
# names break after "_", long text cells wrap, and floats are rounded to FLOAT_DIGITS significant digits.
STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; color: #222; }
h1 { font-size: 17px; } h2 { font-size: 14px; margin-top: 22px; }
div.table-fit { max-width: 100%; overflow-x: auto; margin: 6px 0 14px; border: 1px solid #ddd; }
table.factrace { border-collapse: separate; border-spacing: 0; font-size: 12px; }
table.factrace th, table.factrace td { border-right: 1px solid #ddd; border-bottom: 1px solid #ddd; padding: 2px 6px;
  text-align: left; vertical-align: top; }
table.factrace th { background: #f2f2f2; position: sticky; top: 0; z-index: 1; max-width: 9em; white-space: normal; }
table.factrace td { white-space: nowrap; }
table.factrace td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.factrace td.wrap { white-space: normal; min-width: 12em; max-width: 28em; overflow-wrap: anywhere; }
table.factrace th:first-child, table.factrace td:first-child { position: sticky; left: 0; z-index: 2;
  background: #f7f7f7; }
table.factrace th:first-child { z-index: 3; background: #e9e9e9; }
table.factrace tr:nth-child(even) td { background: #fafafa; }
table.factrace tr:nth-child(even) td:first-child { background: #f0f0f0; }
p.note { color: #555; } figure { margin: 10px 0 24px; } figure img { max-width: 100%; border: 1px solid #ddd; }
"""


def _flatten(obj: object, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(obj, dict):
        out: list[tuple[str, str]] = []
        for k, v in obj.items():
            out.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        return [(prefix, json.dumps(obj))]
    if isinstance(obj, list):
        return [(prefix, ", ".join(str(x) for x in obj))]
    return [(prefix, "" if obj is None else str(obj))]


def read_any(path: PathLike) -> pd.DataFrame:
    """A table from .csv, .tsv, .parquet or .json (a JSON object becomes key / value rows)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(p)
    if suffix == ".tsv":
        return pd.read_csv(p, sep="\t", keep_default_na=False)
    if suffix == ".parquet":
        return pd.read_parquet(p)
    if suffix == ".json":
        obj = json.loads(p.read_text())
        if isinstance(obj, list) and all(isinstance(x, dict) for x in obj):
            return pd.DataFrame(obj)
        return pd.DataFrame(_flatten(obj), columns=["key", "value"])
    raise ValueError(f"{p}: no HTML rendering for {suffix or 'files without a suffix'} (csv, tsv, parquet, json)")


FLOAT_DIGITS = 3  # significant digits of the floats shown (the files hold full precision)
WRAP_CHARS = 40  # a text column with a longer cell wraps instead of widening the table


def _cell(value: object) -> str:
    if value is None or (not isinstance(value, (list, tuple, dict)) and pd.api.types.is_scalar(value)
                         and pd.isna(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{FLOAT_DIGITS}g}"
    return str(value)


def _header(name: object) -> str:
    """A column name that may break after each ``_`` (``ratio_of_grid_maxima`` over three short lines)."""
    return html.escape(str(name)).replace("_", "_<wbr>")


def table_html(df: pd.DataFrame) -> str:
    """``df`` as an HTML table that fits the page: inside a ``div.table-fit`` that scrolls sideways with a sticky
    first column, floats rounded to :data:`FLOAT_DIGITS` significant digits, numbers right-aligned, long text
    wrapped."""
    if df.empty:
        return "<p class='note'>(no rows)</p>"
    classes = []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            classes.append("num")
        elif s.astype(str).str.len().max() > WRAP_CHARS:
            classes.append("wrap")
        else:
            classes.append("")
    head = "".join(f"<th>{_header(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False, name=None):
        cells = "".join(f"<td class='{k}'>{html.escape(_cell(v))}</td>" if k else f"<td>{html.escape(_cell(v))}</td>"
                        for v, k in zip(rec, classes, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return (f"<div class='table-fit'><table class='factrace'>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
            + "\n".join(rows) + "\n</tbody></table></div>")


def _fate_counts(df: pd.DataFrame) -> pd.DataFrame:
    counts = df.groupby(["model", "modality", "fate"]).size().unstack("fate", fill_value=0)
    counts.columns.name = None
    return counts.reset_index()


def _document(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def tables_page(paths: Sequence[PathLike], title: str, note: str = "") -> str:
    """One HTML page with a section per table (titled by its file name)."""
    parts = [f"<p class='note'>{html.escape(note)}</p>"] if note else []
    for path in paths:
        df = read_any(path)
        name = Path(path).name
        if {"model", "modality", "fate"} <= set(df.columns) and len(df):
            parts.append(f"<h2>{html.escape(name)}: facts per fate</h2>\n{table_html(_fate_counts(df))}")
        parts.append(f"<h2>{html.escape(name)}</h2>\n<p class='note'>{len(df)} rows</p>\n{table_html(df)}")
    return _document(title, "\n".join(parts))


def images_page(pngs: Sequence[PathLike], title: str, note: str = "") -> str:
    """One HTML page with every PNG embedded (data URI), captioned by its file name."""
    parts = [f"<p class='note'>{html.escape(note)}</p>"] if note else []
    if not pngs:
        parts.append("<p class='note'>(no plots)</p>")
    for png in pngs:
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        name = html.escape(Path(png).name)
        parts.append(f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{name}</figcaption></figure>")
    return _document(title, "\n".join(parts))


# ---------------------------------------------------------------- the landing page (Figure 2, its rows, headlines)

ROW_MEANING = {
    ("backbone", "t2t"): "the speech LM's backbone before speech training: where a text LM stores the facts",
    ("speechlm", "t2t"): "the speech LM reading text: did speech training move the facts?",
    ("speechlm", "s2t"): "the same speech LM hearing the prompt: where facts are recalled from speech",
    ("reference", "t2t"): "a real pre-trained text LM (not the backbone): the ROME pattern",
}
#: the meaning of a speech LM's S->T row of one fact set (its checkpoint records which facts it heard in speech)
SET_MEANING = {
    "heard": "the same speech LM hearing the prompts of facts whose speech was in its speech training",
    "text_only": "the same speech LM hearing the prompts of facts it learnt in text only: do facts learnt in text "
                 "carry over to speech?",
}
MODALITY_WORDS = {"t2t": "text \u2192 text", "s2t": "speech \u2192 text"}


@dataclass(frozen=True)
class FigureRow:
    """One row of Figure 2: the model's config key and label, its role, the modality, the fact set (``all``, or
    ``heard`` / ``text_only`` for a speech LM's S->T row split by :mod:`factrace.analysis.rows`) and the facts
    traced."""
    model: str
    modality: str
    label: str
    role: str
    n_facts: int | None
    fact_set: str = ALL

    @property
    def meaning(self) -> str:
        if self.fact_set in SET_MEANING:
            return SET_MEANING[self.fact_set]
        return ROW_MEANING.get((self.role, self.modality), f"{self.role} model, "
                               f"{MODALITY_WORDS.get(self.modality, self.modality)}")


def figure_rows(rows: Sequence[Sequence[str]], fates: pd.DataFrame | None = None) -> list[FigureRow]:
    """Figure 2's rows ([model, modality, label, role], as the report rule passes them), each split by the fact
    sets of its traced facts (:func:`factrace.analysis.rows.split_rows`; the fates' ``fact_set``), with the
    number of facts traced for each (``fates``: the QC fates table; None: unknown); a set none of whose facts was
    traced is a row with n = 0."""
    traced: dict[tuple[str, str], dict[str, int]] = {}
    if fates is not None and len(fates):
        traced = row_counts(fates[fates["fate"] == "traced"], n=None)
    roles = {(str(r[0]), str(r[1])): str(r[3]) if len(r) > 3 else "" for r in rows}
    out = []
    for r in split_rows(rows, traced, untraced_sets(fates)):  # a set with no traced fact: a row, n = 0
        n = r.n if r.n is not None else (0 if fates is not None else None)
        out.append(FigureRow(r.model, r.modality, r.label, roles[(r.model, r.modality)], n, r.fact_set))
    return out


def headline_peaks(peaks: pd.DataFrame, rows: Sequence[FigureRow]) -> pd.DataFrame:
    """The grid maximum of each Figure 2 row (one line) and kind (one column): AIE, its 95% CI, layer and
    category; the last column is the ratio of each kind's maximum to the same model's T->T maximum (S->T rows)."""
    if peaks.empty:
        return pd.DataFrame()
    peaks = with_fact_set(peaks)
    cols = {"hidden": "hidden states", "mlp": "MLP", "attn": "attention"}
    out = []
    for r in rows:
        g = peaks[(peaks["model"] == r.model) & (peaks["modality"] == r.modality)
                  & (peaks["fact_set"] == r.fact_set)].set_index("kind")
        line: dict[str, object] = {"row of Figure 2": r.label, "n": "" if r.n_facts is None else r.n_facts}
        ratios = []
        for kind, name in cols.items():
            if kind not in g.index or pd.isna(g.loc[kind, "peak_aie"]):
                line[name] = ""
                continue
            k = g.loc[kind]
            line[name] = (f"{k['peak_aie']:.3g} [{k['ci_low']:.2g}, {k['ci_high']:.2g}] "
                          f"at L{int(k['peak_layer'])}, {k['peak_category']}")
            if r.modality != "t2t" and pd.notna(k.get("ratio_of_grid_maxima")):
                ratios.append(f"{name} {k['ratio_of_grid_maxima']:.2g}")
        line["/ T->T maximum"] = ", ".join(ratios)
        out.append(line)
    return pd.DataFrame(out)


def headline_tests(tests: pd.DataFrame) -> pd.DataFrame:
    """The paired T->T vs S->T tests in brief: per model (and S->T fact set, where the model has them) and kind,
    how many (category x layer band) tests, how many reject at Holm-adjusted p < 0.05, and the smallest adjusted
    p with its cell."""
    if tests.empty:
        return pd.DataFrame()
    tests = with_fact_set(tests).sort_values(["model", "fact_set", "kind"], kind="stable",
                                             key=lambda s: fact_set_rank(s) if s.name == "fact_set" else s)
    out = []
    for (model, fact_set, kind), g in tests.groupby(["model", "fact_set", "kind"], sort=False):
        best = g.loc[g["p_holm"].astype(float).idxmin()]
        name = model if fact_set == ALL else f"{model}, S->T {FACT_SET_WORDS.get(fact_set, fact_set)}"
        out.append({"model": name, "kind": kind, "tests": len(g),
                    "rejected (Holm)": int(g["reject"].astype(bool).sum()),
                    "smallest p_holm": f"{float(best['p_holm']):.3g}",
                    "at": f"{best['category']}, {best['band']} layers",
                    "mean T->T - S->T there": f"{float(best['mean_diff']):.3g}", "n": int(best["n"])})
    return pd.DataFrame(out)


_RST_SPECIAL = re.compile(r"([\\`*_|\[\]<>])")


def _rst(text: object) -> str:
    return _RST_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def rst_table(df: pd.DataFrame, title: str = "") -> str:
    """``df`` as an RST ``list-table`` (cells escaped)."""
    if df.empty:
        return "*(no rows)*\n"
    lines = [f".. list-table:: {_rst(title)}".rstrip(), "   :header-rows: 1", ""]
    for rec in [list(df.columns), *df.itertuples(index=False, name=None)]:
        cells = [_rst(_cell(v)) or "\u00a0" for v in rec]
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    return "\n".join(lines) + "\n"


def _png_uri(path: PathLike) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def landing_rst(figure2: PathLike | None, rows: Sequence[FigureRow], peaks: pd.DataFrame,
                tests: pd.DataFrame, link_figure: bool = False) -> str:
    """The report's landing page body (reStructuredText, included by ``workflow/report/workflow.rst``): Figure 2
    embedded, what each of its rows is (model, modality, facts traced) and the headline tables. ``link_figure``:
    a click on the figure opens its result (the reference ``figure2.png_`` that Snakemake's report defines)."""
    parts = ["Figure 2", "--------", ""]
    if figure2 is not None and Path(figure2).is_file():
        uri = _png_uri(figure2)  # over many lines: docutils reads no line longer than 10,000 characters
        parts += [".. image:: " + "\n   ".join(uri[i:i + 76] for i in range(0, len(uri), 76)),
                  *(["   :target: figure2.png_"] if link_figure else []), "   :alt: Figure 2: log10 AIE per layer and token category",
                  "   :width: 100%", ""]
    parts += [
        ("log10 average indirect effect (AIE) of restoring one state of the clean run into the run with the subject "
         "corrupted, per layer (x) and token category (y); columns: hidden states, MLP outputs, attention outputs, "
         "one colour scale per column. Each category is labelled with its n (facts)."), "",
        "What each row is", "~~~~~~~~~~~~~~~~", "",
        rst_table(pd.DataFrame({
            "row of Figure 2": [r.label for r in rows],
            "model": [r.model for r in rows],
            "prompt \u2192 answer": [MODALITY_WORDS.get(r.modality, r.modality) for r in rows],
            "n facts traced": ["" if r.n_facts is None else r.n_facts for r in rows],
            "what it shows": [r.meaning for r in rows],
        })), "",
        "Headline numbers", "----------------", "",
        ("Grid maximum of the AIE per row and kind (categories with enough facts): AIE [bootstrap 95% CI] at layer "
         "L and category; for S->T, its ratio to the same model's T->T maximum (the full tables: *Effect sizes and "
         "tests*)."), "",
        rst_table(headline_peaks(peaks, rows)), "",
    ]
    if not tests.empty:
        parts += ["Paired T->T vs S->T tests (sign-flip permutation over facts, Holm-adjusted over the family):", "",
                  rst_table(headline_tests(tests)), ""]
    return "\n".join(parts)


def landing_page(figure2: PathLike | None, rows: Sequence[FigureRow], peaks: pd.DataFrame, tests: pd.DataFrame,
                 title: str = "factrace: summary") -> str:
    """The landing page's content as a self-contained HTML page (a result of its own in the report)."""
    parts = []
    if figure2 is not None and Path(figure2).is_file():
        parts.append(f"<figure><img alt='Figure 2' src='{_png_uri(figure2)}'><figcaption>Figure 2: log10 AIE per "
                     "layer and token category; columns hidden states, MLP, attention</figcaption></figure>")
    parts.append("<h2>What each row of Figure 2 is</h2>")
    parts.append(table_html(pd.DataFrame({
        "row of Figure 2": [r.label for r in rows], "model": [r.model for r in rows],
        "prompt \u2192 answer": [MODALITY_WORDS.get(r.modality, r.modality) for r in rows],
        "n facts traced": ["" if r.n_facts is None else r.n_facts for r in rows],
        "what it shows": [r.meaning for r in rows]})))
    parts.append("<h2>Grid maximum per row and kind: AIE [95% CI] at layer, category</h2>" + table_html(headline_peaks(peaks, rows)))
    if not tests.empty:
        parts.append("<h2>Paired T-&gt;T vs S-&gt;T tests</h2>" + table_html(headline_tests(tests)))
    return _document(title, "\n".join(parts))
