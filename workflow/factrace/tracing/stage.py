"""The trace stage: trace every kept fact of a shard and write the long `trace` table.

The job saves each finished fact under ``<out>.parts/`` as it goes; a killed job, rerun, resumes from there and
produces the same table as an uninterrupted run. Each part is keyed by the hash of everything that made it (trace
settings, noise scale, model, modality, weights and the fact's inputs): a part made under other settings is
discarded, never merged. Leftovers of a kill (half-written temporary files, stale parts) are cleared; the parts
directory is removed once the shard table is written.
"""

from __future__ import annotations

import functools
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from factrace.core import io
from factrace.core.contracts import ContractError
from factrace.core.provenance import Provenance, config_hash
from factrace.core.tokens import token_text
from factrace.speechlm.fact_sets import ALL
from factrace.speechlm.inputs import TraceInputs
from factrace.tracing.categories import trace_categories
from factrace.tracing.method import TraceResult, effective_window, make_noise, noise_seed
from factrace.tracing.patching import trace_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TraceSettings:
    kind: str
    layers: tuple[int, int]  # [lo, hi) centre layers of this job
    samples: int  # tracing.samples
    window: int  # tracing.window (mlp, attn)
    seed: int  # seed
    engine: str  # tracing.engine
    max_rows: int  # tracing.max_rows

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def tracer(engine: str, model) -> Callable[..., TraceResult]:
    """``model``'s tracing function for ``tracing.engine``: called as ``patching.trace_prompt`` is, without its
    model argument (the fast engine prepares what depends on the model once, for every fact of the job)."""
    if engine == "reference":
        return functools.partial(trace_prompt, model)
    if engine == "fast":
        from factrace.tracing.engine import Engine

        return Engine(model).trace
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
    prompt: str = "",
    target: str = "",
    fact_set: str = ALL,
    dtype: str,
) -> pd.DataFrame:
    """The long `trace` rows of one fact and kind (one row per layer x position). ``prompt``: the fact's prompt
    text; ``target``: the traced target token, decoded (:func:`factrace.core.tokens.token_text`); ``fact_set``:
    the fact's set (:mod:`factrace.speechlm.fact_sets`: ``heard`` / ``text_only`` in an S->T trace of a speech LM
    whose checkpoint records them, else ``all``); ``dtype``: the dtype the model's blocks ran in."""
    layers = result.layers[kind]
    grid = result.restored[kind]
    n = inp.n_tokens
    ts, te = inp.text_subject
    layer_col = np.repeat(np.asarray(layers, dtype=np.int64), n)
    pos_col = np.tile(np.arange(n, dtype=np.int64), len(layers))
    tti = np.asarray(inp.text_token_index, dtype=np.int64)[pos_col]
    cats = trace_categories(pos_col, tti, ts, te, inp.n_text_tokens, n)
    tokens = [inp.tokens[p] for p in pos_col]
    window = effective_window(kind, settings.window)
    return pd.DataFrame(
        {
            "known_id": np.int64(inp.known_id),
            "model": model,
            "modality": modality,
            "fact_set": fact_set,
            "kind": kind,
            "layer": layer_col,
            "position": pos_col,
            "category": cats,
            "text_token_index": tti,
            "token": tokens,
            "token_text": [token_text(t) for t in tokens],
            "prompt": prompt,
            "target": target,
            "p_clean": result.p_clean,
            "p_corrupted": result.p_corrupted,
            "p_restored": grid.reshape(-1),
            "noise_scale": float(noise_scale),
            "samples": np.int64(settings.samples),
            "window": np.int64(window),
            "seed": np.int64(settings.seed),
            "dtype": dtype,
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
    labels: Mapping[int, tuple[str, str]] | None = None,
    fact_sets: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """Trace ``inputs`` (pairs of inputs and target token id), resuming from finished parts. ``labels``: known_id
    -> (prompt text, target token) for the table's ``prompt`` and ``target`` columns (empty where not given);
    ``fact_sets``: known_id -> the fact's ``fact_set`` (``all`` where not given)."""
    labels = labels or {}
    fact_sets = fact_sets or {}
    out = Path(out)
    parts = parts_dir(out)
    run = tracer(settings.engine, model_obj)
    hidden = model_obj.get_input_embeddings().weight.shape[1]
    dtype = str(next(model_obj.parameters()).dtype).removeprefix("torch.")
    lo, hi = settings.layers
    base = {**settings.as_dict(), "noise_scale": float(noise_scale), "model": model, "modality": modality,
            "weights_sha256": provenance.weights_sha256, "dtype": dtype}
    keys = {inp.known_id: part_key({**base, "labels": list(labels.get(inp.known_id, ("", ""))),
                                    **_set_key(fact_sets.get(inp.known_id, ALL))}, inp, target)
            for inp, target in inputs}
    expected = {part_name(kid, key) for kid, key in keys.items()}
    clear_stale_parts(parts, expected)
    parts.mkdir(parents=True, exist_ok=True)
    frames = []
    t0 = time.monotonic()
    for i, (inp, target) in enumerate(inputs):
        key = keys[inp.known_id]
        part = parts / part_name(inp.known_id, key)
        resumed = read_part(part, key, inp.known_id)
        if resumed is not None:
            frames.append(resumed)
            log.info("fact %d/%d (known_id=%d): resumed from %s", i + 1, len(inputs), inp.known_id, part)
            continue
        s, e = inp.corrupt
        noise = make_noise(
            settings.samples, e - s, hidden, noise_scale, noise_seed(settings.seed, inp.known_id, modality)
        )

        def progress(done: int, total: int, _kid: int = inp.known_id) -> None:
            if done == total or done % max(1, total // 4) == 0:
                log.info("  known_id=%d: cell batch %d/%d", _kid, done, total)

        result = run(
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
        prompt, target_text = labels.get(inp.known_id, ("", ""))
        df = trace_rows(
            inp, result, settings.kind, model=model, modality=modality, noise_scale=noise_scale, settings=settings,
            prompt=prompt, target=target_text, fact_set=fact_sets.get(inp.known_id, ALL), dtype=dtype,
        )
        io.write_table(df, part, "trace", {**provenance.to_dict(), PART_KEY: key})
        frames.append(df)
        log.info(
            "fact %d/%d (known_id=%d, %d tokens): p_clean=%.3f p_corrupted=%.3f, %.1fs elapsed",
            i + 1, len(inputs), inp.known_id, inp.n_tokens, result.p_clean, result.p_corrupted,
            time.monotonic() - t0,
        )
    table = pd.concat(frames, ignore_index=True) if frames else _empty_trace()
    io.write_table(table, out, "trace", provenance)
    shutil.rmtree(parts, ignore_errors=True)
    return table


PART_KEY = "part_key"


def _set_key(fact_set: str) -> dict[str, str]:
    """What a fact's set adds to its part's key: nothing for ``all`` (the keys of traces without a split stay
    those of before the column existed, so their finished parts are kept)."""
    return {} if fact_set == ALL else {"fact_set": fact_set}


def parts_dir(out: str | Path) -> Path:
    """Where a trace job keeps its finished facts until the shard table is written."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def part_key(base: dict, inp: TraceInputs, target: int) -> str:
    """Hash of everything that makes one fact's rows: the job's settings and the fact's own inputs."""
    return config_hash({
        **base,
        "known_id": int(inp.known_id),
        "input_ids": [int(t) for t in inp.input_ids.reshape(-1).tolist()],
        "corrupt": [int(c) for c in inp.corrupt],
        "target": int(target),
        "tokens": list(inp.tokens),
        "text_token_index": [int(t) for t in inp.text_token_index],
        "text_subject": [int(t) for t in inp.text_subject],
    })


def part_name(known_id: int, key: str) -> str:
    return f"known_{known_id}-{key}.parquet"


def clear_stale_parts(parts: Path, expected: set[str]) -> None:
    """Remove what a killed or differently configured job left: parts of other settings, temporary files."""
    if parts.exists() and not parts.is_dir():
        log.warning("removing %s: not a directory of finished facts", parts)
        parts.unlink()
        return
    if not parts.is_dir():
        return
    for path in sorted(parts.iterdir()):
        if path.name in expected:
            continue
        log.warning("discarding %s: made under other settings or cut short by a kill", path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def read_part(part: Path, key: str, known_id: int) -> pd.DataFrame | None:
    """A finished fact's rows if ``part`` is whole and was made with ``key``; None (and removed) otherwise."""
    if not part.exists():
        return None
    try:
        stored = io.read_provenance(part).get(PART_KEY)
        df = io.read_table(part, "trace")
    except (ContractError, OSError, ValueError) as err:  # a part cut short by a kill: recompute it
        log.warning("ignoring unreadable part %s (%s)", part, err)
        part.unlink(missing_ok=True)
        return None
    if stored != key or set(df["known_id"].unique()) != {known_id}:
        log.warning("discarding part %s: made under other settings (key %s, expected %s)", part, stored, key)
        part.unlink(missing_ok=True)
        return None
    return df


def _empty_trace() -> pd.DataFrame:
    from factrace.core.contracts import empty

    df = empty("trace")
    for col in ("token", "token_text", "prompt", "target", "fact_set", "dtype"):
        df[col] = pd.Series(dtype="object")
    return df


def check_layer_count(model: str, configured: int | None, actual: int) -> None:
    """Stop when `models.<model>.n_layers` differs from the loaded model's layer count (a smaller value would
    silently trace a truncated model; the layer windows of the trace jobs come from the config)."""
    if configured is not None and int(configured) != int(actual):
        raise SystemExit(
            f"`models.{model}.n_layers` is {configured} in the config but the loaded model has {actual} layers; "
            f"set `models.{model}.n_layers: {actual}` in the config"
        )


def settings_hash(settings: TraceSettings, noise_scale: float) -> str:
    return config_hash({**settings.as_dict(), "noise_scale": noise_scale})
