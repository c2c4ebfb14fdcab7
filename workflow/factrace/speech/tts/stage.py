"""Stage functions of the speech front half, called by the CLI / Snakemake rules (one shard per call).

Each takes input/output paths and plain parameters, writes its tables atomically with provenance
(:func:`factrace.io.write_table`), and logs progress per fact. A fact that cannot be processed is a row with
a ``reason`` (and ``ok``/``kept``/``aligned`` False), never a crash of the shard.

* :func:`run_tts`: prompts -> WAVs + ``audio`` manifest (+ ``<stem>.onsets.parquet``, ``alignment`` contract,
  method espeak-onsets, with a ``field`` column).
* :func:`run_asr`: ``audio`` manifest -> ``asr`` table (with ``kept``/``reason`` from the WER threshold).
* :func:`run_align_offline`: ``audio`` manifest (+ onsets) + prompts -> ``alignment`` table of the prompt field.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .. import io
from ..provenance import Provenance, config_hash

log = logging.getLogger(__name__)

FIELDS = ("prompt", "subject", "attribute")


def onsets_path(manifest_path: str | os.PathLike[str]) -> Path:
    """The word-onset sidecar of an audio manifest: ``<dir>/<stem>.onsets.parquet``."""
    p = Path(manifest_path)
    return p.with_name(p.stem + ".onsets.parquet")


# --------------------------------------------------------------------------------------------------- tts


def run_tts(
    prompts_parquet: str | os.PathLike[str], out_manifest_parquet: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str], backend: str, voice: str | None = None, rate: float | None = None,
    pitch: int | None = None, seed: int = 0, fields: tuple[str, ...] = FIELDS,
    options: dict[str, Any] | None = None, melotts_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Synthesise prompt, subject and attribute of every fact of the shard.

    Writes ``<audio_dir>/<known_id>_<field>.wav`` (16 kHz mono PCM16), the ``audio`` manifest (extra columns:
    text, voice, ok, reason) and the espeak word onsets beside it (:func:`onsets_path`).
    ``options`` are the backend's own parameters (:func:`factrace.speech.tts_params.tts_options`: eSpeak
    ``voice``/``rate`` (words per minute)/``pitch``; MeloTTS ``speaker``/``speed`` (factor)/``device``...);
    without them ``voice``/``rate``/``pitch`` (all three needed) are eSpeak's. MeloTTS's audio comes from
    ``melotts_dir``, the output of :mod:`factrace.speech.melotts_worker` (run in MeloTTS's own environment).
    """
    from .aligners import align_espeak_onsets, alignment_frame
    from .tts import TTSError, synthesize

    prompts = io.read_table(prompts_parquet, "prompts").sort_values("known_id")
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    if options is None:
        if backend != "espeak":
            raise ValueError(f"tts backend {backend!r} needs its options (speech.tts.{backend})")
        if voice is None or rate is None or pitch is None:
            raise ValueError("tts backend 'espeak' needs its options (speech.tts.espeak) or voice, rate and pitch")
        options = {"voice": voice, "rate": int(rate), "pitch": int(pitch)}
    params = {"backend": backend, **options, "seed": seed, "fields": list(fields)}
    voice = str(options.get("voice", options.get("speaker", voice)))
    if backend == "melotts":
        opts: dict[str, Any] = {"raw_dir": melotts_dir}
    else:
        opts = {"voice": voice, "rate": int(options["rate"]), "pitch": int(options["pitch"]), "seed": int(seed)}
    rows, onset_frames, engine = [], [], None
    for n, fact in enumerate(prompts.itertuples(index=False), 1):
        kid = int(fact.known_id)
        for field in fields:
            text = str(getattr(fact, field) or "").strip()
            wav = audio_dir / f"{kid}_{field}.wav"
            row = {"known_id": kid, "field": field, "path": str(wav), "sample_rate": 0, "duration_s": 0.0,
                   "backend": backend, "sha256": "", "text": text, "voice": voice, "ok": False, "reason": ""}
            try:
                res = synthesize(text, wav, backend, **opts)
            except TTSError as err:
                log.warning("fact %d %s: synthesis failed: %s", kid, field, err)
                row["reason"] = f"synthesis failed: {err}"
                rows.append(row)
                continue
            engine = res.info.get("engine", backend)
            row.update(sample_rate=int(res.sample_rate), duration_s=float(res.duration_s),
                       sha256=io.sha256_file(wav), ok=True)
            rows.append(row)
            onsets = align_espeak_onsets(kid, text, res)
            onsets["field"] = field
            onset_frames.append(onsets)
        log.info("tts %d/%d: fact %d done (%s)", n, len(prompts), kid, backend)
    manifest = pd.DataFrame(rows, columns=["known_id", "field", "path", "sample_rate", "duration_s", "backend",
                                           "sha256", "text", "voice", "ok", "reason"])
    manifest = manifest.astype({"known_id": "int64", "sample_rate": "int64", "duration_s": "float64",
                                "ok": "bool"})
    onsets_df = pd.concat(onset_frames, ignore_index=True) if onset_frames else alignment_frame([])
    if "field" not in onsets_df.columns:
        onsets_df["field"] = pd.Series(dtype="object")
    prov = Provenance(stage="tts", config_hash=config_hash(params), seed=int(seed), model_id=engine or backend,
                      extra={**params, "n_facts": len(prompts), "n_failed": int((~manifest["ok"]).sum())})
    io.write_table(onsets_df, onsets_path(out_manifest_parquet), "alignment", prov)
    io.write_table(manifest, out_manifest_parquet, "audio", prov)
    log.info("tts: %d files (%d failed) -> %s", len(manifest), int((~manifest["ok"]).sum()), out_manifest_parquet)
    return manifest


# --------------------------------------------------------------------------------------------------- asr


def run_asr(
    audio_manifest: str | os.PathLike[str], out_parquet: str | os.PathLike[str], model: str,
    wer_threshold: float | None, fields: tuple[str, ...] = ("prompt",), beam_size: int = 5, *,
    device: str, offline: bool = True, seed: int = 0, cpu_threads: int | None = None,
) -> pd.DataFrame:
    """Transcribe the manifest's files of ``fields`` (default: the prompt, as the paper) and score them.

    Output: the ``asr`` contract plus field, path, reference_norm, hypothesis_norm, kept, reason. Files that
    failed synthesis or are unusable are rows with ``kept`` False and a reason.
    """
    from .asr import (
        apply_wer_threshold,
        asr_table,
        corpus_wer,
        load_model,
        model_id,
        resolve_model,
        transcribe,
    )
    from .audio import BadAudioError

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


# ------------------------------------------------------------------------------------------------- align


def run_align_offline(
    audio_manifest: str | os.PathLike[str], onsets_parquet: str | os.PathLike[str] | None,
    prompts_parquet: str | os.PathLike[str], out_parquet: str | os.PathLike[str], method: str,
    model: str | None = None,
) -> pd.DataFrame:
    """Word alignment of the prompt field of every fact, in the ``alignment`` contract (+ field, reason, aligned).

    ``method``: ``espeak-onsets`` (reads ``onsets_parquet``), ``pocketsphinx`` or ``whisper`` (``model`` is the
    faster-whisper model spec). The prompt text comes from the prompts table.
    """
    from .aligners import METHODS, _skip_rows, align_pocketsphinx, align_whisper

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
    from .aligners import alignment_frame
    from .asr import model_id as asr_model_id

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
