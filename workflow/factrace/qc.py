"""The QC table: how many facts reach each stage, and why the others left."""

from __future__ import annotations

import pandas as pd


def qc_table(prompts: pd.DataFrame, filters: pd.DataFrame, traces: pd.DataFrame) -> pd.DataFrame:
    """Long table: stage, model, modality, status, reason, n_facts."""
    rows = [{"stage": "facts", "model": "", "modality": "", "status": "in", "reason": "", "n_facts": len(prompts)}]
    if len(filters):
        f = filters.assign(status=filters["kept"].map({True: "kept", False: "dropped"}))
        f["reason"] = f["reason"].fillna("")
        for (m, mod, st, reason), g in f.groupby(["model", "modality", "status", "reason"], dropna=False):
            rows.append({"stage": "filter", "model": m, "modality": mod, "status": st, "reason": reason,
                         "n_facts": g["known_id"].nunique()})
        for (m, mod), g in f.groupby(["model", "modality"]):
            rows.append({"stage": "filter", "model": m, "modality": mod, "status": "match", "reason": "",
                         "n_facts": len(g)})
            for match, gm in g.groupby("match"):
                rows.append({"stage": "filter", "model": m, "modality": mod, "status": f"match={match}",
                             "reason": "", "n_facts": len(gm)})
    if len(traces):
        for (m, mod), g in traces.groupby(["model", "modality"]):
            rows.append({"stage": "trace", "model": m, "modality": mod, "status": "traced", "reason": "",
                         "n_facts": g["known_id"].nunique()})
    return pd.DataFrame(rows)
