"""The ASR check stage, called by the CLI (``factrace asr``) / Snakemake rule ``asr`` (one shard per call).

:func:`run_asr`: ``audio`` manifest -> ``asr`` table (with ``kept``/``reason`` from the WER threshold). It writes
its table atomically with provenance (:func:`factrace.io.write_table`) and logs progress per fact. A fact that
cannot be processed is a row with a ``reason`` and ``kept`` False, never a crash of the shard.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from factrace.core import io
from factrace.core.provenance import Provenance, config_hash

log = logging.getLogger(__name__)


def run_asr(
    audio_manifest: str | os.PathLike[str], out_parquet: str | os.PathLike[str], model: str,
    wer_threshold: float | None, fields: tuple[str, ...] = ("prompt",), beam_size: int = 5, *,
    device: str, offline: bool = True, seed: int = 0, cpu_threads: int | None = None,
) -> pd.DataFrame:
    """Transcribe the manifest's files of ``fields`` (default: the prompt, as the paper) and score them.

    Output: the ``asr`` contract plus field, path, reference_norm, hypothesis_norm, kept, reason. Files that
    failed synthesis or are unusable are rows with ``kept`` False and a reason.
    """
    from factrace.speech.asr.whisper import (
        apply_wer_threshold,
        asr_table,
        corpus_wer,
        load_model,
        model_id,
        resolve_model,
        transcribe,
    )
    from factrace.speech.audio import BadAudioError

    manifest = io.read_table(audio_manifest, "audio")
    manifest = manifest[manifest["field"].isin(fields)].sort_values(["known_id", "field"])
    wm = load_model(model, device=device, offline=offline, cpu_threads=cpu_threads)
    mid = model_id(model)
    kids, refs, hyps, fld, paths, bad = [], [], [], [], [], {}
    for n, r in enumerate(manifest.itertuples(index=False), 1):
        text = str(getattr(r, "text", "") or "")
        hyp = ""
        if "ok" in manifest.columns and not bool(r.ok):
            bad[len(kids)] = f"no audio: {getattr(r, 'reason', '') or 'synthesis failed'}"
        else:
            try:
                hyp = transcribe([r.path], wm, beam_size=beam_size, seed=seed)[0]
            except BadAudioError as err:
                bad[len(kids)] = f"unusable audio: {err.problem}"
                log.warning("asr: fact %d %s: %s", r.known_id, r.field, err)
        kids.append(int(r.known_id))
        refs.append(text)
        hyps.append(hyp)
        fld.append(r.field)
        paths.append(r.path)
        log.info("asr %d/%d: fact %d %s: %r", n, len(manifest), r.known_id, r.field, hyp)
    df = asr_table(kids, refs, hyps, mid, extra={"field": fld, "path": paths})
    df = apply_wer_threshold(df, wer_threshold)
    for i, reason in bad.items():
        df.loc[i, "kept"] = False
        df.loc[i, "reason"] = reason
    cw = corpus_wer([r for i, r in enumerate(refs) if i not in bad], [h for i, h in enumerate(hyps) if i not in bad])
    target = resolve_model(model)[0]
    weights = Path(target) / "model.bin"
    prov = Provenance(
        stage="asr_check", seed=int(seed), model_id=mid,
        weights_sha256=io.sha256_file(weights) if weights.exists() else None,
        config_hash=config_hash({"model": model, "wer_threshold": wer_threshold, "fields": list(fields),
                                 "beam_size": beam_size, "seed": seed}),
        extra={"corpus_wer": cw, "n": len(df), "n_dropped": int((~df["kept"]).sum()), "wer_threshold": wer_threshold},
    )
    io.write_table(df, out_parquet, "asr", prov)
    log.info("asr: corpus WER %.3f over %d utterances (%d dropped) -> %s", cw, len(df), int((~df["kept"]).sum()),
             out_parquet)
    return df
