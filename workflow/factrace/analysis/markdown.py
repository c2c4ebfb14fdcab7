"""Formatting of README's generated tables (:mod:`factrace.analysis.summary`): numbers, percentages, accuracy
records, noise ratios and the table record itself."""

from __future__ import annotations

from typing import Any

import pandas as pd

Table = dict[str, Any]


def num(x: Any, digits: int = 3) -> str:
    """A number as README shows it: 3 significant digits, '-' for missing."""
    if x is None or (isinstance(x, float) and pd.isna(x)):
        return "-"
    if isinstance(x, (bool,)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    return f"{float(x):.{digits}g}"


def pct(x: Any) -> str:
    return "-" if x is None or pd.isna(x) else f"{100 * float(x):.1f}%"


def table(columns: list[str], rows: list[list[str]], sources: list[str], note: str = "") -> Table:
    return {"columns": columns, "rows": rows, "sources": sources, "note": note}


def dig(obj: dict[str, Any], key: str) -> Any:
    """``obj["a"]["b"]`` for ``"a.b"``; None when a part is missing."""
    for part in key.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def acc(a: Any) -> str:
    """An accuracy record (``accuracy``, ``correct``, ``n``) as '98.3% (57 of 58)'."""
    if not isinstance(a, dict) or any(a.get(k) is None for k in ("accuracy", "correct", "n")):
        return "-"
    return f"{pct(a['accuracy'])} ({a['correct']} of {a['n']})"


def ratio(r: Any) -> str:
    """A noise record as '0.2 (median p_corrupted 0.19, p_clean 0.99; 3 x std, 58 facts)' (', target not reached'
    after the multiplier when the noise rule's largest multiplier did not reach its target)."""
    keys = ("median_ratio", "median_p_corrupted", "median_p_clean", "multiplier", "n")
    if not isinstance(r, dict) or any(r.get(k) is None for k in keys):
        return "-"
    flag = ", target not reached" if r.get("reached") is False else ""  # the noise rule's flag (eval.json)
    return (f"{num(r['median_ratio'], 3)} (median p_corrupted {num(r['median_p_corrupted'], 3)}, p_clean "
            f"{num(r['median_p_clean'], 3)}; {num(r['multiplier'])} x std{flag}, {r['n']} facts)")
