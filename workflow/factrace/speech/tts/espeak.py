"""The ``espeak`` TTS backend (the offline default): eSpeak NG speech with its true word onsets.

Synthesis runs in a fork of a freshly initialised engine (:mod:`factrace.speech.tts.espeak_engine`) with a
fixed random seed, so the same text, voice, rate and pitch give byte-identical WAVs. eSpeak renders 22050 Hz;
the audio is resampled to 16 kHz mono PCM16. Its WORD events give each word's onset; words it joins to the
previous one get onsets split by eSpeak's own phoneme counts (:mod:`factrace.speech.tts.onsets`).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import numpy as np

from factrace.speech.audio import TARGET_SR, resample, write_wav16
from factrace.speech.tts.base import SynthResult, TTSError, is_spoken, text_words
from factrace.speech.tts.espeak_engine import EspeakNG, run_forked
from factrace.speech.tts.onsets import (
    events_to_words,
    trailing_speech_end,
    trim_trailing_silence,
    word_timing,
)


def _espeak_child(text: str, voice: str, rate: int, pitch: int, seed: int):
    """In the forked child: synthesise, and phonemise the words eSpeak gave no WORD event."""
    eng = EspeakNG.get()
    try:
        eng.lib.espeak_ng_SetRandSeed(ctypes.c_long(int(seed)))
    except AttributeError:  # pragma: no cover - older library
        pass
    pcm, events = eng.synth(text, voice, rate, pitch)
    words = text_words(text)
    got = {k for k, _ in events_to_words(text, events)}
    n_phones = {}
    for k, w in enumerate(words):
        if k not in got and is_spoken(w):
            n_phones[k] = sum(len(p) for p in eng.phonemes_ipa(w, voice)) or 1
    # phoneme counts of the evented words that precede a missing one, for the proportional split
    for k in list(n_phones):
        j = k - 1
        while j >= 0 and j not in got:
            j -= 1
        if j >= 0 and j not in n_phones:
            n_phones[j] = sum(len(p) for p in eng.phonemes_ipa(words[j], voice)) or 1
    return pcm, events, n_phones, eng.sample_rate, eng.version


def synthesize_espeak(
    text: str, out_wav: str | os.PathLike[str], voice: str, rate: int, pitch: int, seed: int = 0,
    **_ignored: Any,
) -> SynthResult:
    """Synthesise ``text`` into ``out_wav`` (16 kHz mono PCM16) with word onsets and ends."""
    pcm, events, n_phones, native_sr, version = run_forked(
        _espeak_child, text, voice, int(rate), int(pitch), int(seed)
    )
    if pcm.size == 0:
        raise TTSError(f"{out_wav}: eSpeak produced no audio for {text!r}")
    wave = resample(pcm.astype(np.float32) / 32768.0, native_sr, TARGET_SR)
    path = write_wav16(out_wav, wave, TARGET_SR)
    duration = len(wave) / TARGET_SR
    speech_end = min(duration, trailing_speech_end(wave, TARGET_SR))
    timing = word_timing(text, events, native_sr, speech_end, n_phones)
    timing = [(k, w, t0, trim_trailing_silence(wave, TARGET_SR, t0, t1), i) for k, w, t0, t1, i in timing]
    return SynthResult(
        path=path, sample_rate=TARGET_SR, duration_s=duration,
        word_onsets=[(w, t0) for _, w, t0, _, _ in timing],
        word_ends=[(w, t1) for _, w, _, t1, _ in timing],
        word_indices=[k for k, *_ in timing],
        backend="espeak",
        info={"voice": voice, "rate": int(rate), "pitch": int(pitch), "engine": version,
              "native_sample_rate": native_sr, "interpolated": [x[4] for x in timing]},
    )


def espeak_phonemes(text: str, voice: str) -> list[list[str]]:
    """eSpeak's IPA pronunciation of ``text`` (one list of phonemes per spoken word)."""
    return run_forked(_espeak_phonemes_child, text, voice)


def _espeak_phonemes_child(text: str, voice: str) -> list[list[str]]:
    return EspeakNG.get().phonemes_ipa(text, voice)
