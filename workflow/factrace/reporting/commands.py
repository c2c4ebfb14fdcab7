"""`factrace report-tables`, `report-images` and `report-landing`: pages for the Snakemake report."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _write(text: str, out: str) -> None:
    from factrace.core.io import atomic_path

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _tables(a: argparse.Namespace) -> int:
    from factrace.reporting.pages import tables_page

    _write(tables_page(a.inputs, a.title, a.note), a.out)
    log.info("%s: %d tables", a.out, len(a.inputs))
    return 0


def _images(a: argparse.Namespace) -> int:
    from factrace.reporting.pages import images_page

    pngs = sorted(Path(a.dir).glob(f"{a.prefix}*.png"))
    _write(images_page(pngs, a.title, a.note), a.out)
    log.info("%s: %d plots", a.out, len(pngs))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report-tables", help="render tables (csv, tsv, parquet, json) as one HTML page")
    p.add_argument("--inputs", nargs="+", required=True, help="the tables, one section each")
    p.add_argument("--title", required=True, help="the page's title")
    p.add_argument("--note", default="", help="a paragraph under the title")
    p.add_argument("--out", required=True, help="the HTML page to write")
    p.set_defaults(func=_tables)
    p = subparsers.add_parser("report-images", help="embed the PNGs DIR/PREFIX*.png in one HTML page")
    p.add_argument("--dir", required=True, help="directory of the PNGs (DIR)")
    p.add_argument("--prefix", required=True, help="file name prefix of the PNGs embedded (PREFIX)")
    p.add_argument("--title", required=True, help="the page's title")
    p.add_argument("--note", default="", help="a paragraph under the title")
    p.add_argument("--out", required=True, help="the HTML page to write")
    p.set_defaults(func=_images)
    register_landing(subparsers)


def _landing(a: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from factrace.reporting.pages import figure_rows, landing_page, landing_rst, read_any

    fates = read_any(a.fates) if a.fates else None
    rows = figure_rows(json.loads(a.rows), fates)
    peaks = read_any(a.peaks) if a.peaks else pd.DataFrame()
    tests = read_any(a.tests) if a.tests else pd.DataFrame()
    _write(landing_rst(a.figure2, rows, peaks, tests, link_figure=True), a.out_rst)
    _write(landing_page(a.figure2, rows, peaks, tests, a.title), a.out_html)
    log.info("%s, %s: %d rows of Figure 2", a.out_rst, a.out_html, len(rows))
    return 0


def register_landing(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report-landing", help="the report's landing page: Figure 2, what each of its rows "
                              "is, and the headline tables (RST for workflow.rst, and an HTML page)")
    p.add_argument("--figure2", required=True, help="Figure 2's PNG")
    p.add_argument("--rows", required=True, help="JSON list of [model, modality, label, role] (Figure 2's rows)")
    p.add_argument("--fates", default=None, help="qc/fates.parquet: the facts traced per row")
    p.add_argument("--peaks", default=None, help="compare/peaks.csv")
    p.add_argument("--tests", default=None, help="compare/tests.csv")
    p.add_argument("--title", required=True, help="the landing page's title")
    p.add_argument("--out-rst", required=True, help="the landing page as reStructuredText (the report's front page)")
    p.add_argument("--out-html", required=True, help="the same content as an HTML page (the report's Summary)")
    p.set_defaults(func=_landing)
