"""The ``melotts`` TTS backend (the paper's, for clusters): MeloTTS's WAVs of a shard, resampled to 16 kHz.

MeloTTS cannot share this environment (it pins ``transformers==4.27.4``), so it synthesises in its own
(:mod:`factrace.speech.tts.melotts_worker`, rule ``tts_melotts``, env ``envs/melotts.yaml``), with speaker (e.g.
``EN-US``) and speed factor (1.0 = normal) from ``speech.tts.melotts``. Here its WAVs are checked against the
texts, resampled to 16 kHz mono PCM16 and described by the worker's ``synth.json``. Gives no word onsets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from factrace.speech.audio import TARGET_SR, resample, write_wav16
from factrace.speech.tts.base import SynthResult, TTSError

MELOTTS_ENV_FILE = "envs/melotts.yaml"


def synthesize_melotts(
    text: str, out_wav: str | os.PathLike[str], raw_dir: str | os.PathLike[str] | None = None, **_ignored: Any,
) -> SynthResult:
    """Resample MeloTTS's WAV for ``out_wav`` (made by :mod:`factrace.speech.tts.melotts_worker` in MeloTTS's own
    environment, rule ``tts_melotts``) to 16 kHz mono. The worker's ``synth.json`` gives its parameters."""
    import json

    import soundfile as sf

    from factrace.speech.audio import to_mono

    if raw_dir is None:
        raise TTSError(
            "the melotts backend synthesises in MeloTTS's own environment (rule tts_melotts, "
            f"`python -m factrace.speech.tts.melotts_worker`, env {MELOTTS_ENV_FILE}); pass its output as raw_dir. "
            "Offline, use tts backend 'espeak'."
        )
    raw = Path(raw_dir)
    meta_path = raw / "synth.json"
    if not meta_path.is_file():
        raise TTSError(f"{meta_path} not found: run the MeloTTS worker on the shard first")
    meta = json.loads(meta_path.read_text())
    stem = Path(out_wav).stem
    entry = meta.get("files", {}).get(stem)
    if entry is None:
        raise TTSError(f"{meta_path}: no entry for {stem}")
    if not entry.get("ok"):
        raise TTSError(f"MeloTTS: {entry.get('error', 'synthesis failed')}")
    if entry.get("text") is not None and entry["text"] != text.strip():
        raise TTSError(f"{raw / (stem + '.wav')} was synthesised from {entry['text']!r}, not {text!r}: rerun tts_melotts")
    wave, sr = sf.read(str(raw / f"{stem}.wav"), dtype="float32", always_2d=False)
    wave = resample(to_mono(wave), int(sr), TARGET_SR)
    path = write_wav16(out_wav, wave, TARGET_SR)
    return SynthResult(
        path=path, sample_rate=TARGET_SR, duration_s=len(wave) / TARGET_SR, word_onsets=None, backend="melotts",
        info={"speaker": meta.get("speaker"), "speed": meta.get("speed"), "device": meta.get("device"),
              "language": meta.get("language"), "native_sample_rate": int(sr), "engine": "melotts"},
    )
