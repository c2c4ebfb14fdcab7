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

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 13px; margin: 12px; color: #222; }
h1 { font-size: 17px; } h2 { font-size: 14px; margin-top: 22px; }
table.factrace { border-collapse: collapse; margin: 6px 0 14px; }
table.factrace th, table.factrace td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
table.factrace th { background: #f2f2f2; position: sticky; top: 0; }
table.factrace tr:nth-child(even) td { background: #fafafa; }
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


def table_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p class='note'>(no rows)</p>"
    return df.to_html(index=False, classes="factrace", border=0, na_rep="", float_format=lambda x: f"{x:.4g}")


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
