"""README's measured tables are generated (`make numbers`): the committed summary renders to README's blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from factrace.analysis.summary import collect, readme_blocks, readme_update, render_all, write_summary

REPO = Path(__file__).resolve().parents[1]
SUMMARY = REPO / "resources" / "demo-summary" / "summary.json"


def test_readme_tables_equal_what_summarize_prints_for_the_committed_summary():
    blocks = render_all(json.loads(SUMMARY.read_text()))
    in_readme = readme_blocks((REPO / "README.md").read_text())
    assert in_readme, "README has no generated blocks"
    assert set(in_readme) == set(blocks), "README's blocks and the summary's tables differ; run `make numbers`"
    for name, body in blocks.items():
        assert in_readme[name] == body, f"README block {name} is stale; run `make numbers`"


def test_every_generated_table_names_its_source():
    for name, table in json.loads(SUMMARY.read_text())["tables"].items():
        assert table["sources"] and all(s.startswith("results/") for s in table["sources"]), name
        assert "Source: `results/" in render_all({"tables": {name: table}})[name]


def _results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    (res / "compare").mkdir(parents=True)
    pd.DataFrame([{"model": "slm", "modality": "s2t", "kind": "mlp", "peak_aie": 0.05, "peak_layer": 1,
                   "peak_category": "first subsequent", "ci_low": 0.01, "ci_high": 0.09, "n": 8, "min_facts": 5,
                   "categories_below_min_facts": "middle subject", "reference_peak_aie": 0.5,
                   "reference_peak_category": "last token", "reference_peak_layer": 2,
                   "ratio_of_grid_maxima": 0.1}]).to_csv(res / "compare" / "peaks.csv", index=False)
    return res


def test_readme_update_rewrites_only_the_marked_blocks_and_is_idempotent(tmp_path):
    res = _results(tmp_path)
    summary = collect(res)
    assert summary["tables"]["demo-peaks"]["rows"]
    gap = render_all(summary)["demo-gap"]  # a table the run lacks names the file it would come from
    assert gap == "*Not in this run: no such result file.*\nSource: `results/gap/*.parquet` (`make numbers`).\n"
    out = write_summary(summary, tmp_path / "summary")
    first = out.read_bytes()
    readme = tmp_path / "README.md"
    readme.write_text("# x\nhand text 0.42\n<!-- factrace:summary demo-peaks -->\nold | table\n"
                      "<!-- /factrace:summary -->\ntail\n")
    assert readme_update(readme, render_all(summary))
    text = readme.read_text()
    assert "hand text 0.42" in text and text.endswith("<!-- /factrace:summary -->\ntail\n")
    assert "| slm | s2t | mlp | 0.05 (0.01-0.09) | first subsequent, layer 1 | 8 | 0.1 | middle subject |" in text
    assert "`results/compare/peaks.csv`" in text
    assert not readme_update(readme, render_all(summary))  # a second run changes nothing
    write_summary(collect(res), tmp_path / "summary")
    assert out.read_bytes() == first
