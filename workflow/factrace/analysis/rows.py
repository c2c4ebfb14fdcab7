"""The rows of Figure 2 and of every analysis table: (model, modality, fact set).

The workflow names the rows it plans, ``[model, modality, label]`` (``figure2_rows`` in
``workflow/rules/common.smk``: it cannot know the sets, which the speech LM's build records). A row is split here,
at run time, by the ``fact_set`` column of the tables (:mod:`factrace.speechlm.fact_sets`): a speech LM whose
checkpoint records which traced facts it heard in speech training has two S->T rows, "facts heard in speech"
and "facts learnt in text only", each labelled with its n; every other row has the one set ``all`` and keeps its
label. Tables written before the column existed read as ``all``. A set that the QC fates record but that has no
traced fact (every fact of it dropped by the filter) is still a row, with n = 0 and the reason
(:func:`untraced_sets`): nothing is left out of Figure 2 silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from factrace.speechlm.fact_sets import ALL, FACT_SET_WORDS, FACT_SETS

__all__ = [
    "ALL",
    "FACT_SETS",
    "FACT_SET_WORDS",
    "Row",
    "Untraced",
    "fact_set_rank",
    "ordered",
    "row_counts",
    "row_label",
    "row_name",
    "set_rank",
    "split_rows",
    "traced_per_set",
    "untraced_sets",
    "with_fact_set",
]

COLUMN = "fact_set"

#: (model, modality) -> {fact set: why none of its facts was traced} (:func:`untraced_sets`)
Untraced = Mapping[tuple[str, str], Mapping[str, str]]


def with_fact_set(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``fact_set`` column: ``all`` where the table has none (written before the column existed, or
    by hand) or a value is missing. Returns ``df`` itself when nothing is to be filled."""
    if COLUMN in df.columns and not df[COLUMN].isna().any():
        return df
    out = df.copy()
    out[COLUMN] = out[COLUMN].fillna(ALL).astype(object) if COLUMN in out.columns else ALL
    if COLUMN not in df.columns:  # the new column after modality, where the tables keep it
        cols = list(df.columns)
        at = cols.index("modality") + 1 if "modality" in cols else len(cols)
        out = out[[*cols[:at], COLUMN, *cols[at:]]]
    return out


def set_rank(fact_set: str) -> int:
    """Where a set's rows go: all, heard, text_only, then any other set."""
    return FACT_SETS.index(fact_set) if fact_set in FACT_SETS else len(FACT_SETS)


def fact_set_rank(values: pd.Series) -> pd.Series:
    """:func:`set_rank` of each value: a ``sort_values`` key of a ``fact_set`` column."""
    return values.map(set_rank)


def ordered(sets) -> list[str]:
    """The distinct sets of ``sets`` in the order rows are shown (:func:`set_rank`, then name)."""
    return sorted({str(s) for s in sets}, key=lambda s: (set_rank(s), s))


def row_label(label: str, fact_set: str, n: int | None) -> str:
    """A row's label: the planned one for ``all``; ``<label>, facts heard in speech (n=7)`` for a set."""
    if fact_set == ALL:
        return label
    words = FACT_SET_WORDS.get(fact_set, f"facts {fact_set}")
    return f"{label}, {words}" + ("" if n is None else f" (n={n})")


def row_name(modality: str, fact_set: str) -> str:
    """How a table cell names a row's modality and set: ``s2t``, or ``s2t: facts learnt in text only``."""
    return modality if fact_set == ALL else f"{modality}: {FACT_SET_WORDS.get(fact_set, fact_set)}"


@dataclass(frozen=True)
class Row:
    """One row of Figure 2 and of the tables: model, modality, fact set, its label, its n (facts) and, for a set
    with no traced fact, why (``note``)."""

    model: str
    modality: str
    fact_set: str
    label: str
    n: int | None = None
    note: str = ""


def row_counts(df: pd.DataFrame, n: str | None = "n") -> dict[tuple[str, str], dict[str, int]]:
    """(model, modality) -> {fact set: facts}. ``n``: the column that counts facts on each row (an AIE table's
    ``n``: the largest is the set's facts); None: one row per fact (the QC fates' traced rows)."""
    if df is None or df.empty:
        return {}
    df = with_fact_set(df)
    keys = ["model", "modality", COLUMN]
    counts = df.groupby(keys, sort=True)[n].max() if n else df.groupby(keys, sort=True).size()
    out: dict[tuple[str, str], dict[str, int]] = {}
    for (model, modality, fs), v in counts.items():
        if pd.notna(v):
            out.setdefault((str(model), str(modality)), {})[str(fs)] = int(v)
    return out


def untraced_sets(fates: pd.DataFrame | None) -> dict[tuple[str, str], dict[str, str]]:
    """(model, modality) -> {fact set: why no fact of it was traced} from the QC fates (one row per fact, model and
    modality: ``fate``, ``reason``, ``fact_set``; :mod:`factrace.analysis.qc`), for every recorded set (not
    ``all``, not '') without a ``traced`` fact. The reason counts each fate with its most frequent reason:
    ``no fact traced: 29 dropped (filter: generation does not contain the attribute)``."""
    if fates is None or fates.empty:
        return {}
    fates = with_fact_set(fates)
    out: dict[tuple[str, str], dict[str, str]] = {}
    for (model, modality, fs), g in fates.groupby(["model", "modality", COLUMN], sort=True):
        if str(fs) in ("", ALL) or (g["fate"] == "traced").any():
            continue
        parts = []
        for fate, gf in g.groupby("fate", sort=True):
            reasons = gf["reason"].fillna("").astype(str).value_counts()
            top, others = str(reasons.index[0]), len(gf) - int(reasons.iloc[0])
            why = top + (f"; {others} other reasons" if others else "")
            parts.append(f"{len(gf)} {fate}" + (f" ({why})" if why else ""))
        out.setdefault((str(model), str(modality)), {})[str(fs)] = "no fact traced: " + ", ".join(parts)
    return out


def split_rows(rows: Sequence[Sequence], counts: Mapping[tuple[str, str], Mapping[str, int]],
               untraced: Untraced | None = None) -> list[Row]:
    """The planned rows ``[model, modality, label, ...]`` split by fact set: a (model, modality) whose ``counts``
    (:func:`row_counts`) hold sets other than ``all`` gives one row per set (in :data:`FACT_SETS` order),
    labelled with its words and n (:func:`row_label`); any other gives its one row, ``all``, its label unchanged
    (n from ``counts`` when there). ``untraced`` (:func:`untraced_sets`) adds the sets without a traced fact, each a
    row with n = 0 and its reason as ``note``. Elements after the label (the report's role) are ignored; a
    :class:`Row` is kept as it is."""
    out: list[Row] = []
    for r in rows:
        if isinstance(r, Row):
            out.append(r)
            continue
        model, modality, label = str(r[0]), str(r[1]), str(r[2])
        sets = counts.get((model, modality), {})
        empty = {fs: why for fs, why in (untraced or {}).get((model, modality), {}).items() if fs not in sets}
        if set(sets) | set(empty) <= {ALL}:
            out.append(Row(model, modality, ALL, label, sets.get(ALL)))
            continue
        out += [Row(model, modality, fs, row_label(label, fs, sets.get(fs, 0)), sets.get(fs, 0), empty.get(fs, ""))
                for fs in ordered([*sets, *empty])]
    return out


def traced_per_set(aie: pd.DataFrame, untraced: Mapping[str, str] | None = None) -> int | str | None:
    """Facts traced, from one (model, modality)'s AIE table (the largest n of each fact set, summed); with fact
    sets, each set's too, the sets of ``untraced`` (:func:`untraced_sets`) with 0:
    '29 (facts heard in speech 29, facts learnt in text only 0)'. None for an empty table."""
    if aie.empty:
        return None
    per_set = with_fact_set(aie).groupby(COLUMN)["n"].max().astype(int).to_dict()
    per_set.update({fs: 0 for fs in (untraced or {}) if fs not in per_set})
    if set(per_set) <= {ALL}:
        return int(sum(per_set.values()))
    parts = ", ".join(f"{FACT_SET_WORDS.get(fs, fs)} {per_set[fs]}" for fs in ordered(per_set))
    return f"{sum(per_set.values())} ({parts})"
