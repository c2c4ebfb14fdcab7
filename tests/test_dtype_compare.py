"""`factrace dtype-compare`: two runs compared on Figure 2's cells, on exact small traces."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from factrace.checks.precision import compare_runs
from factrace.cli import main
from factrace.core import io
from test_analysis import _rows, tiny_trace


def _run(**changes) -> pd.DataFrame:
    """tiny_trace (IE per position: fact 1 [0, .4, .1, .2, .5], fact 2 [.1, .2, .4, .4, .1, .3, .7]) with some IEs
    changed: {(known_id, position): ie}."""
    df = tiny_trace()
    for (kid, pos), ie in changes.get("ie", {}).items():
        row = (df["known_id"] == kid) & (df["position"] == pos)
        df.loc[row, "p_restored"] = df.loc[row, "p_corrupted"] + ie
    return df


def test_identical_runs_agree_exactly():
    a = _run().assign(dtype="bfloat16")
    (row,) = compare_runs(a, _run(), combine="mean", min_facts=2).to_dict("records")
    assert (row["dtype"], row["reference_dtype"]) == ("bfloat16", "float32")  # a table without the column: float32
    assert row["max_aie_diff"] == 0 and row["max_p_clean_diff"] == 0 and row["within_tolerance"]
    assert row["peak"] == row["reference_peak"] == "last token @ layer 0" and row["same_peak"]
    assert row["peak_gap"] == 0 and (row["n_traced"], row["n_reference"], row["n_common"]) == (2, 2, 2)


def test_a_difference_beyond_the_tolerance_is_flagged_with_the_same_peak():
    ref = _run(ie={(1, 4): 0.46})  # last token and prediction: (0.46 + 0.7) / 2 = 0.58 against 0.6
    (row,) = compare_runs(_run(), ref, combine="mean", min_facts=2).to_dict("records")
    assert row["max_aie_diff"] == pytest.approx(0.02) and not row["within_tolerance"]
    assert row["same_peak"] and row["peak_gap"] == 0


def test_another_peak_is_reported_with_its_gap_and_small_categories_never_peak():
    # the reference's first subject becomes (0.4 + 1.5) / 2 = 0.95; the checked run's middle subject (one fact)
    # is huge but below min_facts = 2, so it is no peak
    ref = _run(ie={(2, 0): 1.5})
    run = _run(ie={(2, 1): 3.0, (2, 2): 3.0})
    (row,) = compare_runs(run, ref, combine="mean", min_facts=2).to_dict("records")
    assert row["peak"] == "last token @ layer 0" and row["reference_peak"] == "first subject @ layer 0"
    assert not row["same_peak"] and row["peak_gap"] == pytest.approx(0.95 - 0.6)
    (one,) = compare_runs(run, ref, combine="mean", min_facts=1).to_dict("records")
    assert one["peak"] == "middle subject @ layer 0"


def test_only_common_facts_are_compared_and_missing_rows_say_why():
    extra = pd.DataFrame(_rows(3, 5, 1, 2, 0.1, [0.0, 0.9, 0.9, 0.9, 0.9]))
    other_model = pd.DataFrame(_rows(1, 5, 1, 2, 0.1, [0.0, 0.4, 0.1, 0.2, 0.5], model="m2"))
    run = pd.concat([_run(), extra, other_model], ignore_index=True)
    rows = compare_runs(run, _run(), combine="mean", min_facts=2).set_index("model")
    assert rows.loc["m", "n_traced"] == 3 and rows.loc["m", "n_common"] == 2 and rows.loc["m", "max_aie_diff"] == 0
    assert rows.loc["m2", "reason"] == "not traced in the reference run" and pd.isna(rows.loc["m2", "max_aie_diff"])


def test_the_command_reads_two_result_trees(tmp_path, capsys):
    for name, df in (("a", _run()), ("b", _run(ie={(1, 4): 0.46}))):
        df = df.assign(text_subject_start=df["subject_start"], text_subject_end=df["subject_end"],
                       n_text_tokens=df["n_tokens"])
        io.write_table(df, tmp_path / name / "trace" / "m" / "t2t" / "hidden" / "shard-0.parquet", "trace")
    out = tmp_path / "cmp.tsv"
    main(["dtype-compare", "--results", str(tmp_path / "a"), "--reference", str(tmp_path / "b"), "--combine", "mean",
          "--min-facts", "2", "--out", str(out)])
    table = pd.read_csv(out, sep="\t")
    assert table["max_aie_diff"].tolist() == pytest.approx([0.02]) and "last token @ layer 0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["dtype-compare", "--results", str(tmp_path / "none"), "--reference", str(tmp_path / "b"),
              "--combine", "mean", "--min-facts", "2", "--out", str(out)])
    assert f"{tmp_path / 'none' / 'trace'}: no such file" in capsys.readouterr().err  # names the missing folder


def test_the_float32_overlay_is_the_default_smollm2_but_for_its_dtype():
    repo = Path(__file__).resolve().parents[1]
    default = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    overlay = yaml.safe_load((repo / "config" / "smollm2-float32.yaml").read_text())
    assert default["models"]["smollm2"]["dtype"] == "bfloat16" and overlay["models"]["smollm2"]["dtype"] == "float32"
    assert {**overlay["models"]["smollm2"], "dtype": "bfloat16"} == default["models"]["smollm2"]
    make = (repo / "Makefile").read_text()  # the command compares with the default's aggregation settings
    assert f"--combine {default['aggregate']['combine']} --min-facts {default['aggregate']['min_facts']}" in make
