"""The report's HTML pages: tables (csv, tsv, parquet, json) and plots are rendered inline, self-contained."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from factrace.cli import main
from factrace.reporting.pages import read_any, tables_page


def test_every_table_format_becomes_an_html_table(tmp_path):
    df = pd.DataFrame({"model": ["m", "m", "m"], "modality": ["t2t", "t2t", "s2t"],
                       "fate": ["traced", "not_traced", "dropped"], "reason": ["", "cap <4>", "x & y"]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    df.to_parquet(tmp_path / "c.parquet")
    (tmp_path / "eval.json").write_text(json.dumps({"text": {"accuracy": 1.0, "n": 3}, "renderings": ["a", "b"]}))
    page = tables_page([tmp_path / n for n in ("a.csv", "b.tsv", "c.parquet", "eval.json")], "T & t")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert page.count("<table") == 4 + 3  # each table, and the fate counts of the three fate tables
    assert "cap &lt;4&gt;" in page and "x &amp; y" in page and "T &amp; t" in page  # escaped
    ev = read_any(tmp_path / "eval.json")
    assert dict(zip(ev["key"], ev["value"], strict=True)) == {"text.accuracy": "1.0", "text.n": "3",
                                                              "renderings": "a, b"}
    with pytest.raises(ValueError, match="no HTML rendering"):
        read_any(tmp_path / "x.txt")


def test_images_page_embeds_the_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in ("m_t2t_known1.png", "m_t2t_known2.png", "m_s2t_known1.png"):
        plt.plot([0, 1])
        plt.savefig(tmp_path / name)
        plt.close()
    out = tmp_path / "page.html"
    main(["report-images", "--dir", str(tmp_path), "--prefix", "m_t2t_", "--title", "t", "--out", str(out)])
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2 and "m_s2t_known1" not in page


def test_a_wide_table_fits_the_page(tmp_path):
    """peaks.csv is wider than the page: the table scrolls sideways in its own container with a sticky first
    column, column names break after '_', floats are rounded and long text wraps."""
    from factrace.reporting.pages import FLOAT_DIGITS, STYLE

    cols = {f"reference_peak_column_{i}": [0.123456789, 1234.56789] for i in range(14)}
    df = pd.DataFrame({"model": ["speechlm_backbone", "m"], **cols,
                       "reason": ["a long reason " * 6, "short"]})
    df.to_csv(tmp_path / "peaks.csv", index=False)
    page = tables_page([tmp_path / "peaks.csv"], "peaks")
    assert "<div class='table-fit'><table class='factrace'>" in page
    assert "div.table-fit { max-width: 100%; overflow-x: auto;" in STYLE
    assert "td:first-child { position: sticky; left: 0;" in STYLE
    assert "reference_<wbr>peak_<wbr>column_<wbr>0" in page
    assert f"{0.123456789:.{FLOAT_DIGITS}g}" in page and "0.123456789" not in page and "1.23e+03" in page
    assert "<td class='wrap'>a long reason" in page and "<td class='num'>" in page
