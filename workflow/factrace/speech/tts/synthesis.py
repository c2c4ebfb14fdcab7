"""The TTS backend dispatcher: :func:`synthesize` renders a text with the chosen backend (see
:mod:`factrace.speech.tts` for the backends)."""

from __future__ import annotations

import os
from typing import Any

from factrace.speech.tts.base import SynthResult, TTSError

BACKENDS = ("espeak", "melotts")


def synthesize(text: str, out_wav: str | os.PathLike[str], backend: str, **opts: Any) -> SynthResult:
    """Synthesise ``text`` into ``out_wav`` (16 kHz mono PCM16 WAV, written atomically).

    espeak options: ``voice``, ``rate`` (words per minute, 80-450) and ``pitch`` (0-100), all required (the
    config's ``speech.tts.espeak``), and ``seed`` (eSpeak's random seed, default 0). melotts options:
    ``raw_dir``, the MeloTTS worker's output for the shard.
    """
    if not text or not text.strip():
        raise TTSError(f"{out_wav}: nothing to synthesise (empty text). Check the prompts table.")
    if backend == "espeak":
        from factrace.speech.tts.espeak import synthesize_espeak

        return synthesize_espeak(text, out_wav, **opts)
    if backend == "melotts":
        from factrace.speech.tts.melotts import synthesize_melotts

        return synthesize_melotts(text, out_wav, **opts)
    raise TTSError(f"unknown TTS backend {backend!r}; choose one of {', '.join(BACKENDS)}")
