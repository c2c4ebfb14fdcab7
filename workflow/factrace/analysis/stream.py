"""Per-fact effects from trace tables, one table at a time (the traces never sit in memory together).

A trace table holds one (model, modality, kind, shard), so every prompt's rows are in one table and the
per-fact effects of :func:`factrace.analysis.aie.prompt_category_effects` can be computed table by table and
concatenated: the result is the same as on the concatenated traces, with the memory of one table's needed
columns (the token strings and provenance columns are not read).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import pandas as pd
import pyarrow.parquet as pq

from factrace.analysis.aie import Combine, WindowKey, prompt_category_effects, trace_windows
from factrace.core.contracts import CONTRACTS, ContractError

log = logging.getLogger(__name__)

#: trace columns that the per-fact effects need
NEEDED = ["known_id", "model", "modality", "kind", "layer", "position", "p_corrupted", "p_restored",
          "text_token_index", "subject_start", "subject_end", "n_tokens", "text_subject_start", "text_subject_end",
          "n_text_tokens"]
#: read when the table has them (``fact_set``: tables written before it read as ``all``)
OPTIONAL = ["fact_set"]


def read_trace_columns(path: str | os.PathLike[str], columns: list[str] = NEEDED,
                       optional: list[str] = OPTIONAL) -> pd.DataFrame:
    """The ``columns`` of one trace table, and those of ``optional`` that it has, after checking that the file is
    readable and has the contract's columns (a ContractError names the file otherwise)."""
    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as err:
        raise ContractError(f"{path}: not a readable Parquet file ({err}). Delete it and rerun the rule that "
                            "makes it.") from err
    names = set(pf.schema_arrow.names)
    missing = [c for c in CONTRACTS["trace"] if c not in names]
    if missing:
        raise ContractError(f"{path}: does not satisfy the 'trace' contract (missing {missing}). Delete the file "
                            "and rerun the rule that makes it.")
    return pf.read(columns=[*columns, *(c for c in optional if c in names and c not in columns)]).to_pandas()


def effects_from_traces(paths: Iterable[str | os.PathLike[str]], combine: Combine) -> pd.DataFrame:
    """Per-fact effects (known_id, model, modality, fact_set, kind, layer, category, ie, n_positions) of all
    ``paths``, computed one table at a time."""
    parts = []
    for path in paths:
        trace = read_trace_columns(path)
        if len(trace):
            parts.append(prompt_category_effects(trace, combine=combine))
        log.debug("effects of %s: %d trace rows", path, len(trace))
        del trace
    parts = [p for p in parts if len(p)]
    if not parts:
        return prompt_category_effects(pd.DataFrame(), combine=combine)
    return pd.concat(parts, ignore_index=True)


def windows_from_traces(paths: Iterable[str | os.PathLike[str]]) -> dict[WindowKey, int]:
    """(model, modality, kind) -> the window the trace tables ``paths`` were traced with (their ``window``)."""
    out: dict[WindowKey, int] = {}
    for path in paths:
        out.update(trace_windows(read_trace_columns(path, ["model", "modality", "kind", "window"])))
    return out
