"""The TTS stage, called by the CLI (``factrace tts``) / Snakemake rule ``tts`` (one shard per call).

:func:`run_tts`: prompts -> WAVs + ``audio`` manifest (+ ``<stem>.onsets.parquet``, ``alignment`` contract,
method espeak-onsets, with a ``field`` column). It writes its tables atomically with provenance
(:func:`factrace.io.write_table`) and logs progress per fact. A fact that cannot be synthesised is a row with
a ``reason`` and ``ok`` False, never a crash of the shard.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from factrace.core import io
from factrace.core.provenance import Provenance, config_hash
from factrace.speech.tables import onsets_path

log = logging.getLogger(__name__)

FIELDS = ("prompt", "subject", "attribute")


def run_tts(
    prompts_parquet: str | os.PathLike[str], out_manifest_parquet: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str], backend: str, voice: str | None = None, rate: float | None = None,
    pitch: int | None = None, seed: int = 0, fields: tuple[str, ...] = FIELDS,
    options: dict[str, Any] | None = None, melotts_dir: str | os.PathLike[str] | None = None,
) -> pd.DataFrame:
    """Synthesise prompt, subject and attribute of every fact of the shard.

    Writes ``<audio_dir>/<known_id>_<field>.wav`` (16 kHz mono PCM16), the ``audio`` manifest (extra columns:
    text, voice, ok, reason) and the espeak word onsets beside it (:func:`onsets_path`).
    ``options`` are the backend's own parameters (:func:`factrace.speech.tts.params.tts_options`: eSpeak
    ``voice``/``rate`` (words per minute)/``pitch``; MeloTTS ``speaker``/``speed`` (factor)/``device``...);
    without them ``voice``/``rate``/``pitch`` (all three needed) are eSpeak's. MeloTTS's audio comes from
    ``melotts_dir``, the output of :mod:`factrace.speech.tts.melotts_worker` (run in MeloTTS's own environment).
    """
    from factrace.speech.align.aligners import align_espeak_onsets, alignment_frame
    from factrace.speech.tts.base import TTSError
    from factrace.speech.tts.synthesis import synthesize

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
