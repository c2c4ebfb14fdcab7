"""One trace job: every kind of one (model, modality, shard), the model loaded once, one table per kind.

Each kind has its own settings (the model's window concerns ``mlp`` and ``attn`` only). A kind's table records in
its provenance (``extra.kind_key``) a hash of that kind's settings, the noise scale, the weights and the digest of
the job's input files (the noise JSON counts through its scale only); when
the job is rerun (a setting of another kind changed) a table whose key is unchanged is kept as it is, so changing
the window does not retrace ``hidden``. ``stage.trace_shard`` does the tracing of one kind (and its resume).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from factrace.core import io
from factrace.core.provenance import Provenance, config_hash
from factrace.speechlm.fact_sets import ALL
from factrace.speechlm.inputs import TraceInputs
from factrace.tracing.stage import TraceSettings, trace_shard

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KindJob:
    """One kind of a trace job: its settings and the table it writes."""

    settings: TraceSettings
    out: Path


def kind_jobs(kind_settings: Sequence[tuple[str, dict[str, Any]]], outs: Sequence[str | Path], *,
              layers: tuple[int, int], engine: str, max_rows: int) -> list[KindJob]:
    """``[[kind, {samples, seed, window?}], ...]`` (the rule's ``kinds`` param) paired with the outputs, in order."""
    if len(kind_settings) != len(outs):
        raise ValueError(f"{len(kind_settings)} kinds but {len(outs)} output paths; give one --out per kind")
    jobs = []
    for (kind, s), out in zip(kind_settings, outs):
        unknown = set(s) - {"samples", "seed", "window"}
        if unknown:
            raise ValueError(f"kind {kind!r}: unknown settings {sorted(unknown)}")
        settings = TraceSettings(kind=kind, layers=layers, samples=int(s["samples"]), window=int(s.get("window", 1)),
                                 seed=int(s["seed"]), engine=engine, max_rows=max_rows)
        jobs.append(KindJob(settings, Path(out)))
    return jobs


def traced_facts(prompts: pd.DataFrame, filters: Sequence[pd.DataFrame], max_facts: int | None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The facts the trace jobs trace, as (prompt rows, filter rows indexed by known_id): of each shard's filter
    table (``filters``, one per shard), the kept facts in known_id order, the first ``max_facts`` of them
    (``max_facts_per_shard``; None: all). The noise rule (``scale.noise_json``) measures on the same facts."""
    rows, kept = [], []
    for filt in filters:
        k = filt[filt["kept"]].set_index("known_id")
        r = prompts[prompts["known_id"].isin(k.index)].sort_values("known_id")
        if max_facts is not None and len(r) > max_facts:
            r = r.head(max_facts)
        rows.append(r)
        kept.append(k.loc[r["known_id"]])
    if not rows:
        return prompts.iloc[0:0], pd.DataFrame()
    return pd.concat(rows).sort_values("known_id"), pd.concat(kept)


def inputs_digest(paths: Sequence[str | Path | None]) -> str:
    """sha256 over the contents of the job's input files (prompts, filter, speech tables; the noise scale is a
    setting of each kind's key)."""
    h = hashlib.sha256()
    for p in paths:
        if p:
            h.update(str(Path(p).name).encode())
            h.update(io.sha256_file(p).encode())
    return h.hexdigest()[:16]


def kind_params(job: KindJob, *, modality: str, noise_scale: float, inputs: str, weights: str | None,
                corruption: dict[str, Any] | None = None) -> dict:
    """What a kind's table depends on (``window`` only for mlp/attn, never ``max_rows``, a batching knob;
    ``corruption``: settings of what is corrupted, e.g. the S->T subject margin)."""
    s = job.settings.as_dict()
    s.pop("max_rows")
    if job.settings.kind == "hidden":
        s.pop("window")
    return {**s, "noise_scale": noise_scale, "modality": modality, "inputs": inputs, "weights": weights,
            **(corruption or {})}


def is_current(out: Path, key: str) -> bool:
    """Whether ``out`` exists and was written with the kind key ``key``."""
    if not out.exists():
        return False
    try:
        return io.read_provenance(out).get("extra", {}).get("kind_key") == key
    except (OSError, ValueError) as err:  # an unreadable table (pyarrow's errors are both) is retraced
        log.warning("%s: unreadable provenance (%s); retracing", out, err)
        return False


def trace_kinds(model_obj, inputs: Sequence[tuple[TraceInputs, int]], jobs: Sequence[KindJob], *, model: str,
                modality: str, noise_scale: float, inputs_key: str,
                provenance: Callable[[TraceSettings], Provenance], weights: str | None = None,
                corruption: dict[str, Any] | None = None,
                labels: Mapping[int, tuple[str, str]] | None = None,
                fact_sets: Mapping[int, str] | None = None) -> list[Path]:
    """Trace each kind of ``jobs`` whose table is not current; returns the kinds' tables. ``provenance`` gives
    the provenance of a kind's table; its kind key is added here. ``fact_sets``: known_id -> the fact's
    ``fact_set`` (:func:`factrace.speechlm.fact_sets.fact_sets`; ``all`` where not given), part of the key when
    any fact has a set of its own (a table traced before the speech LM recorded its sets is retraced)."""
    split = sorted((int(k), v) for k, v in (fact_sets or {}).items() if v != ALL)
    for job in jobs:
        key = config_hash(kind_params(job, modality=modality, noise_scale=noise_scale, inputs=inputs_key,
                                      weights=weights, corruption={**(corruption or {}),
                                                                   **({"fact_sets": split} if split else {})}))
        if is_current(job.out, key):
            log.info("%s: kind %s unchanged (settings and inputs); kept", job.out, job.settings.kind)
            continue
        prov = provenance(job.settings)
        prov.extra["kind_key"] = key
        lo, hi = job.settings.layers
        log.info("tracing %d facts: %s %s kind=%s layers [%d, %d)", len(inputs), model, modality,
                 job.settings.kind, lo, hi)
        trace_shard(model_obj, inputs, model=model, modality=modality, noise_scale=noise_scale,
                    settings=job.settings, out=job.out, provenance=prov, labels=labels, fact_sets=fact_sets)
    return [j.out for j in jobs]


def parse_kind_settings(text: str) -> list[tuple[str, dict[str, Any]]]:
    data = json.loads(text)
    return [(str(k), dict(v)) for k, v in data]
