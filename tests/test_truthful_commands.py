"""Issue 24 (2): commands tell the truth. A command given bad input says so in one line naming the file (and, for
validate-facts, each skipped row's known_id and reason) and exits non-zero; it never claims success nor prints a
traceback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from factrace.cli import main

GOOD = {"known_id": 0, "subject": "Italy", "attribute": "Rome", "template": "The capital of {} is",
        "prediction": "Rome", "prompt": "The capital of Italy is", "relation_id": "P36"}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    """``factrace <argv>`` in this process: its exit status and its stdout + stderr (with a SystemExit message)."""
    try:
        code = main(argv)
        msg = ""
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
        msg = "" if isinstance(err.code, int) or err.code is None else str(err.code)
    out = capsys.readouterr()
    return code, out.out + out.err + msg


def _bad_facts(tmp_path: Path) -> Path:
    no_attribute = {k: v for k, v in {**GOOD, "known_id": 7}.items() if k != "attribute"}
    no_placeholder = {**GOOD, "known_id": 9, "template": "The capital of Italy is"}
    path = tmp_path / "facts.json"
    path.write_text(json.dumps([GOOD, no_attribute, no_placeholder]), encoding="utf-8")
    return path


def test_validate_facts_warns_about_each_skipped_row_and_fails(tmp_path, capsys):
    path = _bad_facts(tmp_path)
    code, text = _run(["validate-facts", str(path)], capsys)
    assert code == 2, text
    warnings = [line for line in text.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 2, text
    assert all(str(path) in w for w in warnings)
    assert "row 1 (known_id=7)" in warnings[0] and "'attribute' is missing" in warnings[0] and "fix:" in warnings[0]
    assert "row 2 (known_id=9)" in warnings[1] and "no '{}' placeholder" in warnings[1] and "fix:" in warnings[1]
    assert "1 facts valid, 2 skipped" in text and "facts, valid" not in text


def test_validate_facts_allow_skipped_still_warns_but_exits_zero(tmp_path, capsys):
    path = _bad_facts(tmp_path)
    code, text = _run(["validate-facts", "--allow-skipped", str(path)], capsys)
    assert code == 0, text
    assert "known_id=7" in text and "known_id=9" in text and "1 facts valid, 2 skipped" in text


def test_validate_facts_on_a_clean_file_exits_zero(tmp_path, capsys):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps([GOOD]), encoding="utf-8")
    code, text = _run(["validate-facts", str(path)], capsys)
    assert code == 0 and "1 facts valid, 0 skipped" in text and "WARNING" not in text


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_check_tables_fails_without_tables(tmp_path, capsys, kind):
    path = {"missing": tmp_path / "nonexistent", "empty": tmp_path, "file": tmp_path / "x.txt"}[kind]
    if kind == "file":
        path.write_text("x")
    code, text = _run(["check-tables", str(path)], capsys)
    assert code != 0, text
    assert str(path) in text and "readable" not in text
    assert len(text.strip().splitlines()) == 1, text


@pytest.mark.parametrize("kind", ["missing", "csv", "directory"])
def test_provenance_on_a_non_parquet_path_is_one_line(tmp_path, capsys, kind):
    path = {"missing": tmp_path / "nope.parquet", "csv": tmp_path / "t.csv", "directory": tmp_path}[kind]
    if kind == "csv":
        path.write_text("a\n1\n")
    code, text = _run(["provenance", str(path)], capsys)
    assert code != 0, text
    assert str(path) in text and ".parquet file under results/" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text


def _command_raising(monkeypatch, err: BaseException) -> None:
    """Make `factrace provenance` raise ``err`` (the generic handling in cli.main, for any command)."""
    from factrace.checks import tables

    def boom(args: argparse.Namespace) -> None:
        raise err

    monkeypatch.setattr(tables, "cmd_provenance", boom)


@pytest.mark.parametrize("err", [
    FileNotFoundError(2, "No such file or directory", "/data/missing.bin"),
    IsADirectoryError(21, "Is a directory", "/data/missing.bin"),
])
def test_cli_turns_file_errors_into_one_line(monkeypatch, capsys, err):
    _command_raising(monkeypatch, err)
    code, text = _run(["provenance", "whatever"], capsys)
    assert code == 2, text
    assert text.strip().startswith("factrace provenance: /data/missing.bin: ") and "(" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text


def test_cli_turns_arrow_invalid_into_one_line(monkeypatch, capsys):
    import pyarrow as pa

    _command_raising(monkeypatch, pa.ArrowInvalid("Parquet magic bytes not found in footer of /data/t.parquet"))
    code, text = _run(["provenance", "whatever"], capsys)
    assert code == 2, text
    assert text.strip().startswith("factrace provenance: ") and "/data/t.parquet" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
