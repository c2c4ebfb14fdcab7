"""The sweep's variants table (resources/speechlm/sweep.tsv): one reader for the workflow's jobs and the builds."""

from __future__ import annotations

import pytest
from factrace.models.offline_speechlm.sweep import BASE, read_variants, variant_cells, variant_names

BASE_VALUES = {"layers": 6, "hidden": 128, "intermediate": 384, "backbone_steps": 600, "steps": 800,
               "text_only_fraction": 0.5, "trainable_layers": None, "seed": 1}


def _tsv(tmp_path, text: str):
    p = tmp_path / "sweep.tsv"
    p.write_text(text, encoding="utf-8")
    return p


def test_names_keep_the_table_order_and_skip_comments(tmp_path):
    p = _tsv(tmp_path, "# a comment\nname\tlayers\nzeta\t4\n# another\nalpha\t\n")
    assert variant_names(p) == ["zeta", "alpha"]
    assert variant_names(tmp_path / "absent.tsv") == []


def test_empty_cells_take_the_config_and_given_cells_are_typed(tmp_path):
    p = _tsv(tmp_path, "name\tlayers\tsteps\talign_weight\tprefix_fraction\n"
                       "default\t\t\t\t\nwide\t8\t1600\t3.0\t0.5\n")
    default, wide = read_variants(p, BASE_VALUES)
    assert {k: getattr(default, k) for k in BASE} == BASE_VALUES
    assert default.align_weight == 0.0 and default.prefix_fraction is None
    assert (wide.layers, wide.steps, wide.align_weight, wide.prefix_fraction) == (8, 1600, 3.0, 0.5)
    assert wide.hidden == 128  # not in the table: the config's


def test_a_bad_cell_names_the_file_the_line_and_the_column(tmp_path):
    p = _tsv(tmp_path, "# variants\nname\tlayers\nok\t4\n\n# next\nbad\tfour\n")
    with pytest.raises(ValueError, match=r"sweep\.tsv, line 6: layers='four' is not a int"):
        read_variants(p, BASE_VALUES)
    with pytest.raises(ValueError, match="unknown"):
        read_variants(_tsv(tmp_path, "name\tdepth\nx\t4\n"), BASE_VALUES)


def test_arithmetic_is_read_as_text(tmp_path):
    p = _tsv(tmp_path, "name\tarithmetic\tlayers\nnative\t\t\npinned\taten=avx2;mkl=AVX2\t4\n")
    native, pinned = read_variants(p, BASE_VALUES)
    assert (native.arithmetic, pinned.arithmetic, pinned.layers) == ("", "aten=avx2;mkl=AVX2", 4)


def test_the_shipped_sweep_parses_and_its_arithmetic_specs_are_valid():
    from factrace.core.arithmetic import parse

    variants = read_variants("resources/speechlm/sweep.tsv", BASE_VALUES)
    assert [v.name for v in variants] == variant_names("resources/speechlm/sweep.tsv")
    specs = [parse(v.arithmetic) for v in variants if v.arithmetic]
    assert specs and all(specs)  # some variants name a path, each to a known setting


def test_a_variants_job_key_moves_with_its_own_row_only(tmp_path):
    """Rule speechlm_sweep_variant reruns a variant when its cells change (a param), not when another row is
    edited or added, a column another row fills appears, or a comment changes; duplicate names are refused."""
    p = _tsv(tmp_path, "name\tlayers\tsteps\nwide\t8\t\ndeep\t12\t\n")
    wide, deep = variant_cells(p, "wide"), variant_cells(p, "deep")
    assert wide == '{"layers": "8", "name": "wide"}'
    _tsv(tmp_path, "# edited\nname\tlayers\tsteps\tseed\nwide\t8\t\t\ndeep\t12\t900\t\nnew\t\t\t2\n")
    assert variant_cells(p, "wide") == wide and variant_cells(p, "deep") != deep
    _tsv(tmp_path, "name\tlayers\nwide\t8\nwide\t9\n")
    with pytest.raises(ValueError, match="2 variants named 'wide'"):
        variant_cells(p, "wide")


@pytest.mark.parametrize("carry_over", [[None, None], [None, 0.25]])
def test_the_table_names_the_best_variant_among_those_with_a_carry_over(tmp_path, capsys, carry_over):
    """Tiny variants whose backbone knows no text-only fact have no carry-over (empty cells): the table is still
    written, and its JSON line names the best of the measured variants, or none."""
    import argparse
    import json

    import pandas as pd
    from factrace.models.offline_speechlm.sweep import main_table

    rows = []
    for name, co in zip(["ta", "tb"], carry_over):
        rows.append(tmp_path / f"{name}.tsv")
        pd.DataFrame([{"name": name, "carry_over": co, "carry_over_n": 0 if co is None else 8}]).to_csv(
            rows[-1], sep="\t", index=False)
    out = tmp_path / "sweep.tsv"
    main_table(argparse.Namespace(rows=rows, variants=None, out=out))
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.exists() and line["variants"] == 2
    assert (line["best"], line["best_carry_over"], line["best_n"]) == (
        (None, None, None) if carry_over[1] is None else ("tb", 0.25, 8))
