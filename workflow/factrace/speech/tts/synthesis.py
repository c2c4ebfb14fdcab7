"""Text to speech behind one interface: :func:`synthesize` renders a text to a 16 kHz mono PCM16 WAV.

This module holds what the backends and their callers share: the result (:class:`SynthResult`), the error
(:class:`TTSError`) and the words of a text (:func:`text_words`, :func:`is_spoken`). Each backend is its
own module:

``espeak`` (offline default): :mod:`factrace.speech.tts_espeak`
    eSpeak NG through ctypes (:mod:`factrace.speech.tts_espeak_engine`), deterministic, with true word
    onsets from its WORD events (:mod:`factrace.speech.tts_onsets`).
``melotts`` (the paper's, for clusters): :mod:`factrace.speech.tts_melotts`
    MeloTTS runs in its own environment (:mod:`factrace.speech.melotts_worker`, rule ``tts_melotts``); its
    WAVs are resampled here. Gives no word onsets.

A backend's parameters come from the config's ``speech.tts`` section
(:func:`factrace.speech.tts_params.tts_options`); a shard's prompts are rendered and its ``audio`` table
written by :func:`factrace.speech.stages.run_tts`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("espeak", "melotts")


class TTSError(RuntimeError):
    """Synthesis failed or its backend is unavailable; the message says what to do."""


@dataclass
class SynthResult:
    path: Path
    sample_rate: int
    duration_s: float
    word_onsets: list[tuple[str, float]] | None
    # (word, end_s) per entry of word_onsets: next word's onset, or for the last word the end of audio less
    # trailing silence
    word_ends: list[tuple[str, float]] | None = None
    # index into text_words(text) of each entry of word_onsets
    word_indices: list[int] | None = None
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def text_words(text: str) -> list[str]:
    """The word numbering shared by TTS onsets and every aligner: whitespace tokens of the text."""
    return text.split()


def is_spoken(word: str) -> bool:
    """Whether a text word is spoken at all (it has a letter or digit; an em dash is not)."""
    return any(ch.isalnum() for ch in word)


def synthesize(text: str, out_wav: str | os.PathLike[str], backend: str, **opts: Any) -> SynthResult:
    """Synthesise ``text`` into ``out_wav`` (16 kHz mono PCM16 WAV, written atomically).

    espeak options: ``voice``, ``rate`` (words per minute, 80-450) and ``pitch`` (0-100), all required (the
    config's ``speech.tts.espeak``), and ``seed`` (eSpeak's random seed, default 0). melotts options:
    ``raw_dir``, the MeloTTS worker's output for the shard.
    """
    if not text or not text.strip():
        raise TTSError(f"{out_wav}: nothing to synthesise (empty text). Check the prompts table.")
    if backend == "espeak":
        from .tts_espeak import synthesize_espeak

        return synthesize_espeak(text, out_wav, **opts)
    if backend == "melotts":
        from .tts_melotts import synthesize_melotts

        return synthesize_melotts(text, out_wav, **opts)
    raise TTSError(f"unknown TTS backend {backend!r}; choose one of {', '.join(BACKENDS)}")
