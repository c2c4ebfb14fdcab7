"""A fact set without a traced fact is a row, not an absence: when the S->T filter keeps none of a speech LM's
facts learnt in text only, Figure 2 still has that row, drawn empty with n = 0 and the reason from the QC fates,
and the dropped-tests table has a `no facts` row for it (`factrace compare --fates`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from factrace.analysis import rows as rows_mod
from factrace.analysis.aie import aie_table
from factrace.analysis.figures import heatmaps
from factrace.analysis.rows import Row, split_rows, untraced_sets
from factrace.analysis.stats import DROPPED_COLUMNS, untraced_tests
from test_comparison import speech_rows, text_rows
from test_resume import run_cli

NO_MATCH = "filter: generation does not contain the attribute"
HEARD, TEXT_ONLY = (1, 2, 3), (4, 5)


def _fates(text_only_fate: str = "dropped", reasons: tuple[str, ...] = (NO_MATCH, NO_MATCH)) -> pd.DataFrame:
    """QC fates of `slm`: T->T every fact traced (set all); S->T the heard facts traced, the text-only ones with
    ``text_only_fate`` and ``reasons``."""
    rows = [{"known_id": k, "model": "slm", "modality": "t2t", "fact_set": "all", "fate": "traced", "reason": ""}
            for k in (*HEARD, *TEXT_ONLY)]
    rows += [{"known_id": k, "model": "slm", "modality": "s2t", "fact_set": "heard", "fate": "traced", "reason": ""}
             for k in HEARD]
    rows += [{"known_id": k, "model": "slm", "modality": "s2t", "fact_set": "text_only", "fate": text_only_fate,
              "reason": r} for k, r in zip(TEXT_ONLY, reasons, strict=True)]
    return pd.DataFrame(rows)


def test_untraced_sets_names_each_set_without_a_traced_fact_and_why():
    assert untraced_sets(_fates()) == {("slm", "s2t"): {"text_only": f"no fact traced: 2 dropped ({NO_MATCH})"}}
    mixed = untraced_sets(_fates(reasons=(NO_MATCH, "ASR check: WER 0.6 > 0.5")))
    assert mixed[("slm", "s2t")]["text_only"].endswith("; 1 other reasons)")
    # a set with one traced fact is a drawn row already; '' (not recorded) and all are not sets to add
    some = _fates()
    some.loc[some["known_id"].eq(4) & some["modality"].eq("s2t"), ["fate", "reason"]] = ["traced", ""]
    assert untraced_sets(some) == {}
    unrecorded = _fates().assign(fact_set=lambda d: d["fact_set"].replace({"text_only": ""}))
    assert untraced_sets(unrecorded) == {}
    assert untraced_sets(None) == {} and untraced_sets(_fates().iloc[:0]) == {}


def test_split_rows_adds_the_untraced_set_with_n_0_and_its_reason():
    counts = {("slm", "t2t"): {"all": 5}, ("slm", "s2t"): {"heard": 3}}
    untraced = {("slm", "s2t"): {"text_only": "no fact traced: 2 dropped"}}
    planned = [["slm", "t2t", "LM T->T"], ["slm", "s2t", "LM S->T"]]
    got = split_rows(planned, counts, untraced)
    assert got == [Row("slm", "t2t", "all", "LM T->T", 5),
                   Row("slm", "s2t", "heard", "LM S->T, facts heard in speech (n=3)", 3),
                   Row("slm", "s2t", "text_only", "LM S->T, facts learnt in text only (n=0)", 0,
                       "no fact traced: 2 dropped")]
    # without the fates the set is silently absent: the reason this table is an input of compare
    assert [r.fact_set for r in split_rows(planned, counts)] == ["all", "heard"]
    # a set that is traced keeps its own n; the fates do not override it
    assert split_rows(planned, {**counts, ("slm", "s2t"): {"heard": 3, "text_only": 1}}, untraced)[2].n == 1
    assert rows_mod.row_label("LM S->T", "text_only", 0).endswith("(n=0)")


def test_untraced_tests_are_dropped_rows_with_reason_no_facts():
    df = untraced_tests({("slm", "s2t"): {"text_only": "x"}, ("slm", "t2t"): {"odd": "y"}})
    assert list(df.columns) == DROPPED_COLUMNS
    assert df[["model", "fact_set", "n", "reason"]].values.tolist() == [["slm", "text_only", 0, "no facts"]]


def _write_run(tmp_path):
    """AIE and trace tables of `slm` whose S->T kept only the heard facts; returns the compare argv's inputs."""
    parts = [text_rows(known_id=k, ies=(0.0, 0.3 + 0.01 * k, 0.1, 0.6)) for k in (*HEARD, *TEXT_ONLY)]
    parts += [speech_rows(known_id=k, marker_ie=0.9).assign(fact_set="heard") for k in HEARD]
    traces = pd.concat(parts, ignore_index=True)
    aie = aie_table(traces, combine="mean", n_boot=20)
    paths = {}
    for mod in ("t2t", "s2t"):
        paths[f"aie_{mod}"] = tmp_path / f"aie_{mod}.parquet"
        aie[aie["modality"] == mod].to_parquet(paths[f"aie_{mod}"])
        paths[f"trace_{mod}"] = tmp_path / f"trace_{mod}.parquet"
        traces[traces["modality"] == mod].to_parquet(paths[f"trace_{mod}"])
    paths["fates"] = tmp_path / "fates.parquet"
    _fates().to_parquet(paths["fates"])
    return paths


def _compare(paths, out, fates: bool):
    rows = [["slm", "t2t", "Speech LM T->T"], ["slm", "s2t", "Speech LM S->T"]]
    run_cli(["compare", "--aie", str(paths["aie_t2t"]), str(paths["aie_s2t"]), "--rows", json.dumps(rows),
             "--traces", str(paths["trace_t2t"]), str(paths["trace_s2t"]),
             *(["--fates", str(paths["fates"])] if fates else []),
             "--n-perm", "99", "--exact-max-n", "10", "--min-facts", "2", "--seed", "0", "--combine", "mean",
             "--figure", str(out / "figure2.png"), "--outdir", str(out)])
    return pd.read_csv(out / "figure2_cells.csv"), pd.read_csv(out / "tests_dropped.csv")


def _no_data_panels(monkeypatch) -> tuple[list[str], list[str]]:
    """The text and the title of every empty panel drawn from now on (heatmaps.no_data still draws them)."""
    shown: list[str] = []
    titles: list[str] = []
    real = heatmaps.no_data
    monkeypatch.setattr(heatmaps, "no_data", lambda ax, title, text="no data": (
        shown.append(text), titles.append(title), real(ax, title, text)))
    return shown, titles


def test_compare_draws_and_lists_the_set_no_fact_of_which_was_traced(tmp_path, monkeypatch):
    paths = _write_run(tmp_path)
    shown, titles = _no_data_panels(monkeypatch)
    (tmp_path / "with").mkdir()
    cells, dropped = _compare(paths, tmp_path / "with", fates=True)
    empty = cells[cells["fact_set"] == "text_only"]
    assert list(empty["row"].unique()) == ["Speech LM S->T, facts learnt in text only (n=0)"]
    assert empty["cells"].tolist() == [0, 0, 0]  # one line per kind, nothing drawn
    # each of the row's panels says why (the other rows' mlp and attention panels: no data, the tables hold hidden)
    assert [t for t in shown if t != "no data"] == [f"n = 0: no fact traced: 2 dropped ({NO_MATCH})"] * 3
    assert max(len(line) for t in titles for line in t.splitlines()) <= 60  # wrapped: the long titles do not overlap
    assert (tmp_path / "with" / "figure2.png").stat().st_size > 0
    no_facts = dropped[dropped["reason"] == "no facts"]
    assert no_facts[["model", "fact_set", "n"]].values.tolist() == [["slm", "text_only", 0]]

    (tmp_path / "without").mkdir()
    cells, dropped = _compare(paths, tmp_path / "without", fates=False)
    assert "text_only" not in set(cells["fact_set"]) and "no facts" not in set(dropped["reason"])


def test_compare_names_the_file_when_the_fates_table_is_not_one(tmp_path):
    paths = _write_run(tmp_path)
    pd.DataFrame({"known_id": [1]}).to_parquet(paths["fates"])
    with pytest.raises(SystemExit, match=r"compare: .*fates\.parquet: no column fate, modality, model, reason"):
        _compare(paths, tmp_path, fates=True)


def test_landing_page_lists_the_untraced_set_with_n_0():
    from factrace.reporting.pages import figure_rows

    rows = figure_rows([["slm", "t2t", "LM T->T", "speechlm"], ["slm", "s2t", "LM S->T", "speechlm"]], _fates())
    assert [(r.fact_set, r.n_facts) for r in rows] == [("all", 5), ("heard", 3), ("text_only", 0)]
    assert rows[2].label == "LM S->T, facts learnt in text only (n=0)"


def test_facts_table_counts_the_untraced_set_as_0(tmp_path):
    from factrace.analysis.rows import traced_per_set
    from factrace.analysis.summary import collect

    aie = aie_table(pd.concat([speech_rows(known_id=k, marker_ie=0.9).assign(fact_set="heard") for k in HEARD]),
                    combine="mean", n_boot=5)
    assert traced_per_set(aie) == "3 (facts heard in speech 3)"
    assert traced_per_set(aie, {"text_only": "why"}) == "3 (facts heard in speech 3, facts learnt in text only 0)"
    assert traced_per_set(aie.assign(fact_set="all")) == 3 and traced_per_set(aie.iloc[:0]) is None

    # the README's facts table reads the run's QC fates for it
    res = tmp_path / "results"
    for d in ("filter/slm/s2t", "aie/slm", "qc"):
        (res / d).mkdir(parents=True)
    pd.DataFrame({"known_id": [*HEARD, *TEXT_ONLY], "kept": [True] * 3 + [False] * 2,
                  "match": ["exact"] * 3 + ["none"] * 2}).to_parquet(res / "filter/slm/s2t/shard-0.parquet")
    aie.to_parquet(res / "aie/slm/s2t.parquet")
    _fates().to_parquet(res / "qc/fates.parquet")
    facts = collect(res)["tables"]["demo-facts"]["rows"]
    assert facts == [["slm", "s2t", "5", "3", "3", "0", "2",
                      "3 (facts heard in speech 3, facts learnt in text only 0)"]]


def test_per_model_figure_draws_the_untraced_set_too(tmp_path, monkeypatch):
    paths = _write_run(tmp_path)
    shown, _ = _no_data_panels(monkeypatch)
    out = tmp_path / "aie_slm_s2t.png"
    run_cli(["figure", "heatmaps", "--aie", str(paths["aie_s2t"]), "--label", "LM", "--fates", str(paths["fates"]),
             "--out", str(out)])
    assert out.exists() and out.with_suffix(".pdf").exists()
    assert shown.count(f"n = 0: no fact traced: 2 dropped ({NO_MATCH})") == 3
