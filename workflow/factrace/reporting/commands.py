"""`factrace report-tables` and `factrace report-images`: HTML pages for the Snakemake report."""

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
