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


def test_landing_page_has_figure2_its_rows_and_the_headlines(tmp_path):
    """The report's landing page (the RST that workflow.rst includes): Figure 2 embedded, what each row is (model,
    modality, n facts) and the headline tables, rendered by docutils without a system message."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from docutils.core import publish_parts

    plt.plot([0, 1])
    plt.savefig(tmp_path / "figure2.png")
    plt.close()
    rows = [["bb", "t2t", "Backbone T->T", "backbone"], ["slm", "t2t", "Speech LM T->T", "speechlm"],
            ["slm", "s2t", "Speech LM S->T", "speechlm"], ["ref", "t2t", "SmolLM2 T->T", "reference"]]
    fates = pd.DataFrame({"model": ["bb"] * 3 + ["slm"] * 4 + ["ref"] * 2,
                          "modality": ["t2t"] * 3 + ["t2t", "t2t", "s2t", "s2t"] + ["t2t"] * 2,
                          "fate": ["traced", "traced", "dropped", "traced", "traced", "traced", "failed", "traced",
                                   "traced"]})
    fates.to_parquet(tmp_path / "fates.parquet")
    peaks = pd.DataFrame([{"model": m, "modality": mod, "kind": k, "peak_aie": 0.5, "peak_layer": 3,
                           "peak_category": "last subject", "ci_low": 0.4, "ci_high": 0.6, "n": 2,
                           "ratio_of_grid_maxima": 0.25 if mod == "s2t" else 1.0}
                          for m, mod, _l, _r in rows for k in ("hidden", "mlp", "attn")])
    peaks.to_csv(tmp_path / "peaks.csv", index=False)
    tests = pd.DataFrame([{"model": "slm", "kind": "mlp", "category": "last subject", "band": "early", "n": 2,
                           "mean_diff": 0.3, "p_value": 0.01, "p_holm": 0.03, "reject": True}])
    tests.to_csv(tmp_path / "tests.csv", index=False)
    main(["report-landing", "--figure2", str(tmp_path / "figure2.png"), "--rows", json.dumps(rows),
          "--fates", str(tmp_path / "fates.parquet"), "--peaks", str(tmp_path / "peaks.csv"),
          "--tests", str(tmp_path / "tests.csv"), "--title", "summary", "--out-rst", str(tmp_path / "landing.rst"),
          "--out-html", str(tmp_path / "summary.html")])
    rst = (tmp_path / "landing.rst").read_text()
    assert max(len(line) for line in rst.splitlines()) < 10_000  # docutils' line-length limit
    # as Snakemake renders workflow.rst: the reference the report defines for each result, appended
    body = publish_parts(rst + "\n.. _figure2.png: javascript:void(0)\n", writer="html",
                         settings_overrides={"report_level": 1, "halt_level": 5})["html_body"]
    assert "system-message" not in body and "System Message" not in body
    assert "<img" in body and "data:image/png;base64," in body
    for label, meaning in (("Backbone T-&gt;T", "before speech training"), ("Speech LM S-&gt;T", "hearing the prompt"),
                           ("SmolLM2 T-&gt;T", "real pre-trained text LM")):
        assert label in body and meaning in body
    assert "speech \u2192 text" in body and "text \u2192 text" in body
    # each row's n: the facts traced (dropped and failed ones not counted), in the row's line of the table
    for label, model, arrow, n in (("Backbone T-\\>T", "bb", "text", 2), ("Speech LM T-\\>T", "slm", "text", 2),
                                   ("Speech LM S-\\>T", "slm", "speech", 1), ("SmolLM2 T-\\>T", "ref", "text", 2)):
        block = f"   * - {label}\n     - {model}\n     - {arrow} \u2192 text\n     - {n}\n"
        assert block in rst, block
    assert "0.5 [0.4, 0.6] at L3, last subject" in body and "hidden states 0.25" in body
    assert "rejected (Holm)" in body and "0.03" in body
    html_page = (tmp_path / "summary.html").read_text()
    assert "data:image/png;base64," in html_page and "<div class='table-fit'>" in html_page
