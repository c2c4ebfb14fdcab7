"""Quality of the speech inputs, for the report: how far alignment methods put word onsets from the
synthesiser's own (command ``align-compare``, :mod:`.commands`)."""

from __future__ import annotations

import pandas as pd


def onset_disagreement(reference: pd.DataFrame, others: pd.DataFrame) -> pd.DataFrame:
    """Per alignment method of ``others``: word-onset disagreement with the synthesiser's onsets (``reference``,
    its prompt rows), in ms."""
    from factrace.speech.align.aligners import boundary_disagreement

    if "field" in reference.columns:
        reference = reference[reference["field"] == "prompt"]
    rows = []
    for method, g in others.groupby("method"):
        stats = boundary_disagreement(reference.drop(columns=["field"], errors="ignore"), g)
        rows.append({"method": method, "reference": "synthesiser onsets", **stats})
    return pd.DataFrame(rows, columns=["method", "reference", "median_ms", "p95_ms", "mean_ms", "n"])
