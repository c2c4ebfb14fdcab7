"""The trace stage: trace every kept fact of a shard and write the long `trace` table.

The job saves each finished fact under ``<out>.parts/`` as it goes; a killed job, rerun, resumes from there and
produces the same table as an uninterrupted run. Parts are removed once the shard table is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..contracts import ContractError
from ..provenance import Provenance, config_hash
from .categories import primary_category
from .inputs import TraceInputs
from .noise import make_noise, noise_seed
from .patching import TraceResult, trace_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceSettings:
    kind: str
    layers: tuple[int, int]  # [lo, hi) centre layers of this job
    samples: int = 10
    window: int = 10
    seed: int = 1
    engine: str = "fast"
    max_rows: int = 256

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def tracer(engine: str) -> Callable[..., TraceResult]:
    if engine == "reference":
        return trace_prompt
    if engine == "fast":
        from .engine import trace_prompt_fast

        return trace_prompt_fast
    raise ValueError(f"tracing.engine must be 'fast' or 'reference', got {engine!r}")


def trace_rows(
    inp: TraceInputs,
    result: TraceResult,
    kind: str,
    *,
    model: str,
    modality: str,
    noise_scale: float,
    settings: TraceSettings,
) -> pd.DataFrame:
    """The long `trace` rows of one fact and kind (one row per layer x position)."""
    layers = result.layers[kind]
    grid = result.restored[kind]
    n = inp.n_tokens
    ts, te = inp.text_subject
    layer_col = np.repeat(np.asarray(layers, dtype=np.int64), n)
    pos_col = np.tile(np.arange(n, dtype=np.int64), len(layers))
    tti = np.asarray(inp.text_token_index, dtype=np.int64)[pos_col]
    cats = [primary_category(int(t), ts, te, inp.n_text_tokens) if t >= 0 else "unmapped" for t in tti]
    window = 1 if kind == "hidden" else settings.window
    return pd.DataFrame(
        {
            "known_id": np.int64(inp.known_id),
            "model": model,
            "modality": modality,
            "kind": kind,
            "layer": layer_col,
            "position": pos_col,
            "category": cats,
            "text_token_index": tti,
            "token": [inp.tokens[p] for p in pos_col],
            "p_clean": result.p_clean,
            "p_corrupted": result.p_corrupted,
            "p_restored": grid.reshape(-1),
            "noise_scale": float(noise_scale),
            "samples": np.int64(settings.samples),
            "window": np.int64(window),
            "seed": np.int64(settings.seed),
            "subject_start": np.int64(inp.corrupt[0]),
            "subject_end": np.int64(inp.corrupt[1]),
            "n_tokens": np.int64(n),
            "text_subject_start": np.int64(ts),
            "text_subject_end": np.int64(te),
            "n_text_tokens": np.int64(inp.n_text_tokens),
        }
    )


def trace_shard(
    model_obj,
    inputs: Sequence[tuple[TraceInputs, int]],
    *,
    model: str,
    modality: str,
    noise_scale: float,
    settings: TraceSettings,
    out: str | Path,
    provenance: Provenance,
) -> pd.DataFrame:
    """Trace ``inputs`` (pairs of inputs and target token id), resuming from finished parts."""
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    run = tracer(settings.engine)
    hidden = model_obj.get_input_embeddings().weight.shape[1]
    lo, hi = settings.layers
    frames = []
    t0 = time.monotonic()
    for i, (inp, target) in enumerate(inputs):
        part = parts / f"known_{inp.known_id}.parquet"
        if part.exists():
            try:
                frames.append(io.read_table(part, "trace"))
                log.info("fact %d/%d (known_id=%d): resumed from %s", i + 1, len(inputs), inp.known_id, part)
                continue
            except ContractError as err:  # a part cut short by a kill: recompute it
                log.warning("ignoring unreadable part %s (%s)", part, err)
        s, e = inp.corrupt
        noise = make_noise(
            settings.samples, e - s, hidden, noise_scale, noise_seed(settings.seed, inp.known_id, modality)
        )

        def progress(done: int, total: int, _kid: int = inp.known_id) -> None:
            if done == total or done % max(1, total // 4) == 0:
                log.info("  known_id=%d: cell batch %d/%d", _kid, done, total)

        result = run(
            model_obj,
            inp.input_ids,
            inp.corrupt,
            target,
            noise,
            kinds=(settings.kind,),
            window=settings.window,
            layers=range(lo, hi),
            max_rows=settings.max_rows,
            progress=progress,
        )
        df = trace_rows(
            inp, result, settings.kind, model=model, modality=modality, noise_scale=noise_scale, settings=settings
        )
        io.write_table(df, part, "trace", provenance)
        frames.append(df)
        log.info(
            "fact %d/%d (known_id=%d, %d tokens): p_clean=%.3f p_corrupted=%.3f, %.1fs elapsed",
            i + 1, len(inputs), inp.known_id, inp.n_tokens, result.p_clean, result.p_corrupted,
            time.monotonic() - t0,
        )
    table = pd.concat(frames, ignore_index=True) if frames else _empty_trace()
    io.write_table(table, out, "trace", provenance)
    for p in parts.glob("*.parquet"):
        p.unlink()
    parts.rmdir()
    return table


def _empty_trace() -> pd.DataFrame:
    from ..contracts import empty

    df = empty("trace")
    df["token"] = pd.Series(dtype="object")
    return df


def settings_hash(settings: TraceSettings, noise_scale: float) -> str:
    return config_hash({**settings.as_dict(), "noise_scale": noise_scale})
