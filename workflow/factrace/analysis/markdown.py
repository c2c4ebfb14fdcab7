"""Formatting of README's generated tables (:mod:`factrace.analysis.summary`): numbers, percentages, accuracy
records, noise ratios, the table record itself, and the table as a markdown block between README's markers."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

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


# -- README's generated blocks ----------------------------------------------------------------------------
MARK = re.compile(r"(<!-- factrace:summary (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /factrace:summary -->)", re.DOTALL)


def render(table: Table) -> str:
    """One table as markdown, its note and sources under it."""
    lines = []
    if table["columns"]:
        lines = ["| " + " | ".join(table["columns"]) + " |", "|" + "---|" * len(table["columns"])]
        lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in table["rows"]]
        lines.append("")
    if table.get("note"):
        lines.append(f"*{table['note']}*")
    lines.append("Source: " + ", ".join(f"`{s}`" for s in table["sources"]) + " (`make numbers`).")
    return "\n".join(lines) + "\n"


def readme_blocks(text: str) -> dict[str, str]:
    """The generated blocks of a README: name -> body."""
    return {m.group("name"): m.group("body") for m in MARK.finditer(text)}


def readme_update(readme: Path, blocks: dict[str, str]) -> bool:
    """Rewrite every marked block of ``readme`` that ``blocks`` has; True when the file changed."""
    text = readme.read_text()

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in blocks:
            log.warning("%s: no generated table named %s; block left as it is", readme, name)
            return m.group(0)
        return m.group(1) + blocks[name] + m.group(4)

    new = MARK.sub(sub, text)
    missing = sorted(set(blocks) - set(readme_blocks(text)))
    if missing:
        log.info("%s has no block for %s", readme, missing)
    if new != text:
        readme.write_text(new)
        return True
    return False
