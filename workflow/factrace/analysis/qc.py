"""The QC tables: how many facts reach each stage, and every fact's fate per model and modality.

``qc.tsv`` counts facts per stage; ``fates`` has one row per fact x model x modality with what happened to it:

* ``dropped``: the filter did not keep it (the model's answer did not match the attribute, or the ASR check
  dropped its audio); ``generation`` is what the model said,
* ``not_traced``: kept, but past the model's cap (``models.<m>.max_facts_per_shard``, else
  ``tracing.max_facts_per_shard``: the first N kept facts of a shard are traced),
* ``traced``: in the trace tables,
* ``failed``: it could not be used (no speech tokens, a failed token map, no filter row, or kept but absent from
  the trace tables); ``reason`` has the error.

``fact_set`` (:mod:`factrace.analysis.rows`) is the fact's set: in S->T, the one the speech LM's checkpoint
records (``heard`` / ``text_only``; ``--fact-sets MODEL=DIR``: :func:`factrace.speechlm.fact_sets.fact_sets`), so
that a dropped fact has its set too (how many facts learnt in text only the speech LM answers from speech); a
traced fact's set is the one in the trace tables; ``all`` for every (model, modality) without sets, and '' for a
fact that a checkpoint with sets does not record. ``qc.tsv`` counts the facts traced, and each fate, per set too
(status ``traced (heard)``, ``dropped (text_only)``, ...) where a (model, modality) has sets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import pandas as pd

from factrace.analysis.rows import ALL, ordered, with_fact_set
from factrace.filtering.generate import REASON_NO_MATCH

log = logging.getLogger(__name__)

FATES = ("dropped", "not_traced", "traced", "failed")


@dataclass(frozen=True)
class FactFate:
    known_id: int
    shard: int
    subject: str
    model: str
    modality: str
    fact_set: str  # the traced fact's set; for a fact not traced, `all` (no sets) or '' (sets)
    fate: str  # one of FATES
    reason: str
    match: str
    generation: str


def qc_table(prompts: pd.DataFrame, filters: pd.DataFrame, traces: pd.DataFrame,
             fates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table: stage, model, modality, status, reason, n_facts (``stage = fate``: counts of each fate)."""
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
        traces = with_fact_set(traces)
        for (m, mod), g in traces.groupby(["model", "modality"]):
            rows.append({"stage": "trace", "model": m, "modality": mod, "status": "traced", "reason": "",
                         "n_facts": g["known_id"].nunique()})
            for fs in _sets(g):
                rows.append({"stage": "trace", "model": m, "modality": mod, "status": f"traced ({fs})",
                             "reason": "", "n_facts": g.loc[g["fact_set"] == fs, "known_id"].nunique()})
    if fates is not None and len(fates):
        fates = with_fact_set(fates)
        for (m, mod, fate), g in fates.groupby(["model", "modality", "fate"]):
            rows.append({"stage": "fate", "model": m, "modality": mod, "status": fate, "reason": "",
                         "n_facts": len(g)})
            for fs in _sets(g):
                rows.append({"stage": "fate", "model": m, "modality": mod, "status": f"{fate} ({fs})",
                             "reason": "", "n_facts": int((g["fact_set"] == fs).sum())})
    return pd.DataFrame(rows)


def _sets(df: pd.DataFrame) -> list[str]:
    """The fact sets of ``df`` counted on rows of their own: none when every fact is ``all``."""
    sets = [s for s in ordered(df["fact_set"]) if s]
    return [] if set(sets) <= {ALL} else [s for s in sets if s != ALL]


def _filter_fate(reason: str) -> str:
    return "dropped" if reason == REASON_NO_MATCH or reason.startswith("ASR check:") else "failed"


def parse_model_dirs(items: Iterable[str]) -> dict[str, str]:
    """``["speechlm=results/models/trained/speechlm"]`` -> ``{"speechlm": "results/..."}`` (``--fact-sets``)."""
    out: dict[str, str] = {}
    for item in items:
        model, sep, path = item.partition("=")
        if not sep or not model or not path:
            raise ValueError(f"--fact-sets {item!r}: expected MODEL=DIR (the model's checkpoint directory)")
        out[model] = path
    return out


def parse_caps(items: Iterable[str]) -> dict[str, int]:
    """``["smollm2=2", "speechlm=3"]`` -> ``{"smollm2": 2, "speechlm": 3}`` (the qc command's caps)."""
    caps: dict[str, int] = {}
    for item in items:
        model, sep, n = item.rpartition("=")
        if not sep or not model or not n.isdigit() or int(n) < 1:
            raise ValueError(f"--max-facts-per-shard {item!r}: expected MODEL=N with N >= 1")
        caps[model] = int(n)
    return caps


def fact_fates(prompts: pd.DataFrame, filters: pd.DataFrame, traced: pd.DataFrame,
               max_facts_per_shard: Mapping[str, int],
               fact_sets: Mapping[str, Mapping[int, str]] | None = None) -> pd.DataFrame:
    """One row per fact x (model, modality) of ``filters`` with its fate (see the module docstring).

    ``traced`` has the ``known_id, model, modality`` (and ``fact_set``, else ``all``) of the traced facts.
    ``max_facts_per_shard`` maps a model to its cap (a model absent: no cap), applied as the trace job does: the
    first N kept facts of each shard, by ``known_id``. ``fact_sets``: model -> known_id -> set, the S->T sets
    its checkpoint records (a model absent or empty: none).
    """
    facts = prompts.drop_duplicates("known_id").set_index("known_id").sort_index()
    traced = with_fact_set(traced)
    traced_keys = dict(zip(zip(traced["model"], traced["modality"], traced["known_id"].astype(int), strict=True),
                           traced["fact_set"].astype(str), strict=True))
    recorded = {(m, "s2t"): dict(s) for m, s in (fact_sets or {}).items() if s}
    with_sets = {(m, mod) for (m, mod, _k), fs in traced_keys.items() if fs != ALL} | set(recorded)

    def fact_set(model: str, modality: str, kid: int) -> str:
        if (model, modality, kid) in traced_keys:
            return traced_keys[(model, modality, kid)]
        if (model, modality) not in with_sets:
            return ALL
        return recorded.get((model, modality), {}).get(kid, "")

    out: list[FactFate] = []
    pairs = filters[["model", "modality"]].drop_duplicates().itertuples(index=False)
    for model, modality in sorted(pairs):
        f = filters[(filters["model"] == model) & (filters["modality"] == modality)].set_index("known_id")
        cap = max_facts_per_shard.get(model)
        kept_rank: dict[int, int] = {}
        for _, g in facts[facts.index.isin(f.index[f["kept"].astype(bool)])].groupby("shard"):
            kept_rank.update({int(k): i for i, k in enumerate(sorted(g.index))})
        for kid, fact in facts.iterrows():
            kid = int(kid)
            base = {"known_id": kid, "shard": int(fact["shard"]), "subject": str(fact["subject"]), "model": model,
                    "modality": modality, "fact_set": fact_set(model, modality, kid)}
            if kid not in f.index:
                out.append(FactFate(**base, fate="failed", reason="no filter row for this fact", match="",
                                    generation=""))
                continue
            row = f.loc[kid]
            match, gen = str(row["match"]), str(row["generation"])
            reason = str(row["reason"]) if pd.notna(row["reason"]) else ""
            if not bool(row["kept"]):
                fate = _filter_fate(reason)
                why = f"filter: {reason}" if fate == "dropped" else reason
            elif (model, modality, kid) in traced_keys:
                fate, why = "traced", ""
            elif cap is not None and kept_rank.get(kid, 0) >= cap:
                fate = "not_traced"
                why = f"max_facts_per_shard = {cap} for {model}: kept fact number {kept_rank[kid] + 1} of its shard"
            else:
                fate, why = "failed", "kept by the filter but absent from the trace tables (see the trace log)"
            out.append(FactFate(**base, fate=fate, reason=why, match=match, generation=gen))
    df = pd.DataFrame([asdict(r) for r in out], columns=list(FactFate.__dataclass_fields__))
    log.info("fates: %s", df.groupby(["model", "modality", "fate"]).size().to_dict() if len(df) else {})
    return df


def read_traced(paths: list[str]) -> pd.DataFrame:
    """The (known_id, model, modality, fact_set) of every traced fact, read from the trace tables' key columns
    only (``fact_set`` ``all`` where a table has none)."""
    import pyarrow.parquet as pq

    cols = ["known_id", "model", "modality"]
    frames = [with_fact_set(pq.read_table(p, columns=[*cols, *(["fact_set"] if "fact_set" in pq.read_schema(p).names
                                                               else [])]).to_pandas()).drop_duplicates()
              for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*cols, "fact_set"])
