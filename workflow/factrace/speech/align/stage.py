"""The alignment stage, called by the CLI (``factrace align``) / Snakemake rule ``align`` (one shard per call).

* :func:`run_align_offline`: ``audio`` manifest (+ onsets) + prompts -> ``alignment`` table of the prompt field
  (methods espeak-onsets, pocketsphinx, whisper; rows with ``reason`` and ``aligned`` False when a word is not
  timed).
* :func:`run_align_ctc`: CTC forced alignment of every prompt (method ``hubert-ctc``); a fact that fails is kept
  as a row with ``status = "failed"`` and a ``reason``.

Both write their table atomically with provenance (:func:`factrace.io.write_table`); a fact that cannot be
processed is a row with a reason, never a crash of the shard.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from factrace.core import contracts, io
from factrace.core.io import read_table, write_table
from factrace.core.provenance import Provenance, config_hash
from factrace.speech.tables import PathLike, onsets_path, prompt_rows, resolve_audio_path

log = logging.getLogger(__name__)


def run_align_offline(
    audio_manifest: str | os.PathLike[str], onsets_parquet: str | os.PathLike[str] | None,
    prompts_parquet: str | os.PathLike[str], out_parquet: str | os.PathLike[str], method: str,
    model: str | None = None,
) -> pd.DataFrame:
    """Word alignment of the prompt field of every fact, in the ``alignment`` contract (+ field, reason, aligned).

    ``method``: ``espeak-onsets`` (reads ``onsets_parquet``), ``pocketsphinx`` or ``whisper`` (``model`` is the
    faster-whisper model spec). The prompt text comes from the prompts table.
    """
    from factrace.speech.align.aligners import METHODS, _skip_rows, align_pocketsphinx, align_whisper

    if method == "whisper" and model is None:
        raise ValueError("whisper alignment needs the faster-whisper model (speech.asr.model; --asr-model)")
    if method not in METHODS:
        raise ValueError(f"unknown alignment method {method!r}; choose one of {', '.join(METHODS)}")
    prompts = io.read_table(prompts_parquet, "prompts").sort_values("known_id")
    manifest = io.read_table(audio_manifest, "audio")
    manifest = manifest[manifest["field"] == "prompt"].set_index("known_id")
    onsets = None
    if method == "espeak-onsets":
        if onsets_parquet is None:
            onsets_parquet = onsets_path(audio_manifest)
        onsets = io.read_table(onsets_parquet, "alignment")
        if "field" in onsets.columns:
            onsets = onsets[onsets["field"] == "prompt"]
    frames = []
    for n, fact in enumerate(prompts.itertuples(index=False), 1):
        kid, text = int(fact.known_id), str(fact.prompt)
        if kid not in manifest.index:
            df = _skip_rows(kid, text, method, "no prompt audio in the manifest")
        elif "ok" in manifest.columns and not bool(manifest.loc[kid, "ok"]):
            df = _skip_rows(kid, text, method, f"no audio: {manifest.loc[kid, 'reason'] or 'synthesis failed'}")
        elif method == "espeak-onsets":
            df = onsets[onsets["known_id"] == kid].drop(columns=["field"], errors="ignore")
            if df.empty:
                df = _skip_rows(kid, text, method, "no eSpeak word onsets for this prompt")
        elif method == "pocketsphinx":
            df = align_pocketsphinx(kid, text, manifest.loc[kid, "path"])
        else:
            df = align_whisper(kid, text, manifest.loc[kid, "path"], model=model)
        df = df.copy()
        df["field"] = "prompt"
        frames.append(df)
        log.info("align %s %d/%d: fact %d: %d/%d words timed", method, n, len(prompts), kid,
                 int(df["aligned"].sum()), len(df))
    from factrace.speech.align.aligners import alignment_frame
    from factrace.speech.asr.whisper import model_id as asr_model_id

    out = pd.concat(frames, ignore_index=True) if frames else alignment_frame([]).assign(field="prompt")
    prov = Provenance(
        stage="align", config_hash=config_hash({"method": method, "model": model if method == "whisper" else None}),
        model_id=(asr_model_id(model) if method == "whisper" else
                  {"pocketsphinx": "pocketsphinx en-us (wheel)"}.get(method, "espeak word events")),
        extra={"method": method, "n_words": len(out), "n_aligned": int(out["aligned"].sum())},
    )
    io.write_table(out, out_parquet, "alignment", prov)
    log.info("align %s: %d/%d words timed -> %s", method, int(out["aligned"].sum()), len(out), out_parquet)
    return out


def run_align_ctc(
    audio_manifest: PathLike, prompts_parquet: PathLike, out_parquet: PathLike, model_dir: PathLike,
    device: str = "auto", dtype: str = "auto",
) -> Path:
    """CTC forced alignment of every prompt (method ``hubert-ctc``); failures are rows with word_index -1."""
    from factrace.speech.align.ctc import AlignmentError
    from factrace.speech.align.emissions import METHOD, align_ctc, load_emitter
    from factrace.speech.audio import load_audio

    emitter = load_emitter(model_dir, device=device, dtype=dtype)
    prompts = read_table(prompts_parquet, "prompts").set_index("known_id")
    frames = []
    for _, row in prompt_rows(audio_manifest).iterrows():
        kid = int(row["known_id"])
        try:
            if kid not in prompts.index:
                raise AlignmentError(f"known_id {kid} not in {prompts_parquet}")
            wave, sr = load_audio(resolve_audio_path(row["path"], audio_manifest))
            df = align_ctc(wave, sr, str(prompts.loc[kid, "prompt"]), emitter, known_id=kid)
            df["status"], df["reason"] = "ok", ""
        except (AlignmentError, OSError, ValueError) as err:
            df = pd.DataFrame([{
                "known_id": kid, "word_index": -1, "word": "", "start_s": np.nan, "end_s": np.nan,
                "score": np.nan, "method": METHOD, "char_start": -1, "char_end": -1,
                "status": "failed", "reason": str(err),
            }])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True) if frames else contracts.empty("alignment")
    prov = Provenance(stage="align", config_hash=config_hash({"method": METHOD}), model_id=emitter.model_id,
                      extra={"method": METHOD, "device": str(emitter.device), "dtype": str(emitter.dtype)})
    return write_table(out, out_parquet, "alignment", prov)
