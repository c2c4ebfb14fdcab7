"""Self-contained HTML pages (no scripts, no external files) that the Snakemake report shows inline.

:func:`tables_page` renders CSV / TSV / Parquet / JSON tables, one section each (a fates table also gets its
counts per model, modality and fate); :func:`images_page` embeds PNGs as data URIs.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

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
