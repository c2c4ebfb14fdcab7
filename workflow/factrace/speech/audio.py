"""Loading and checking audio files: one place that says what is wrong with a waveform and how to fix it.

Only soundfile, scipy and numpy are used (torchaudio must not be imported on the offline path).

Problems are of two kinds:

* fixable, recorded as a note and fixed by :func:`prepare_audio`: more than one channel (averaged to mono),
  a sample rate other than the target (resampled with :func:`scipy.signal.resample_poly`), clipping (kept,
  but noted: the waveform is still usable, its transcription may suffer);
* fatal, raised as :class:`BadAudioError`: no samples, NaN/inf samples, or silence (RMS below ``SILENCE_RMS``),
  or a file that cannot be read.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

log = logging.getLogger(__name__)

TARGET_SR = 16000
SILENCE_RMS = 1e-4  # about -80 dBFS: below this the file carries no speech
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
CLIP_FRACTION = 0.001  # more than 0.1 % clipped samples is reported


class BadAudioError(ValueError):
    """An audio file that the workflow cannot use; the message names the file, the problem and the fix."""

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}. Fix: {fix}")


def load_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 in [-1, 1], channels averaged to mono. Returns ``(wave, sample_rate)``.

    Use :func:`load_audio_raw` to keep the channels (as :func:`validate_audio` needs to see them).
    """
    wave, sr = load_audio_raw(path)
    return to_mono(wave), sr


def load_audio_raw(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32, shape ``(n,)`` for mono or ``(n, channels)``; raise BadAudioError if unreadable."""
    p = Path(path)
    if not p.exists():
        raise BadAudioError(p, "file does not exist", "rerun the tts rule that writes it")
    try:
        wave, sr = sf.read(str(p), dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise BadAudioError(
            p, f"not a readable audio file ({err})", "delete it and rerun the tts rule that writes it"
        ) from err
    if wave.ndim == 2 and wave.shape[1] == 1:
        wave = wave[:, 0]
    return np.ascontiguousarray(wave, dtype=np.float32), int(sr)


def to_mono(wave: np.ndarray) -> np.ndarray:
    return wave.mean(axis=1).astype(np.float32) if wave.ndim == 2 else wave.astype(np.float32, copy=False)


def resample(wave: np.ndarray, sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    """Polyphase resampling from ``sr`` to ``target_sr`` (exact rational ratio, e.g. 22050 -> 16000 = 320/441)."""
    if sr == target_sr:
        return wave.astype(np.float32, copy=False)
    ratio = Fraction(target_sr, sr)
    out = resample_poly(wave.astype(np.float64), ratio.numerator, ratio.denominator, axis=0)
    return out.astype(np.float32)


def validate_audio(
    wave: np.ndarray, sr: int, path: str | os.PathLike[str] = "<audio>", target_sr: int = TARGET_SR
) -> list[str]:
    """Every problem of ``wave``, as sentences starting with a keyword.

    Keywords: ``empty``, ``non-finite``, ``silent``, ``clipped``, ``stereo`` (any multi-channel input),
    ``sample-rate``.
    An empty list means the waveform can be used as it is.
    """
    problems: list[str] = []
    if wave.size == 0 or wave.shape[0] == 0:
        return [f"empty: {path} has no samples"]
    n_bad = int(np.size(wave) - np.count_nonzero(np.isfinite(wave)))
    if n_bad:  # NaN/inf pass every level check below and would poison resampling, units and alignment
        return [f"non-finite: {path} has {n_bad} NaN or infinite samples"]
    if wave.ndim == 2 and wave.shape[1] > 1:
        problems.append(f"stereo: {path} has {wave.shape[1]} channels; averaged to mono")
    mono = to_mono(wave)
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64))))
    if rms < SILENCE_RMS:
        problems.append(f"silent: {path} has RMS {rms:.2e} < {SILENCE_RMS:.0e}")
    clipped = float(np.mean(np.abs(wave) >= CLIP_LEVEL))
    if clipped > CLIP_FRACTION:
        problems.append(
            f"clipped: {100 * clipped:.2f}% of samples of {path} reach |x| >= {CLIP_LEVEL} "
            f"(more than {100 * CLIP_FRACTION:.1f}%)"
        )
    if sr != target_sr:
        problems.append(f"sample-rate: {path} is {sr} Hz; resampled to {target_sr} Hz")
    return problems


_FATAL_FIX = {
    "empty": "the synthesiser produced no audio: check that the text is not empty and rerun the tts rule",
    "silent": "the file holds silence: check the TTS voice/volume settings and rerun the tts rule",
    "non-finite": "the synthesiser produced NaN/inf samples (half precision on GPU can): rerun the tts rule, "
    "in float32 if it happens again",
}


def prepare_audio(path: str | os.PathLike[str], target_sr: int = TARGET_SR) -> tuple[np.ndarray, list[str]]:
    """Load ``path`` and make it usable: mono, ``target_sr`` Hz, float32.

    Returns ``(wave, notes)``; ``notes`` records every fix made and every non-fatal problem (clipping).
    Raises :class:`BadAudioError` for what cannot be fixed (unreadable, empty, silent).
    """
    raw, sr = load_audio_raw(path)
    problems = validate_audio(raw, sr, path, target_sr)
    for prob in problems:
        key = prob.split(":", 1)[0]
        if key in _FATAL_FIX:
            raise BadAudioError(path, prob.split(": ", 1)[1], _FATAL_FIX[key])
    wave = resample(to_mono(raw), sr, target_sr)
    for prob in problems:
        log.info("%s", prob)
    return wave, problems


def write_wav16(path: str | os.PathLike[str], wave: np.ndarray, sr: int = TARGET_SR) -> Path:
    """Write mono PCM16 WAV atomically (temporary name, then rename)."""
    from factrace.core.io import atomic_path

    p = Path(path)
    with atomic_path(p) as tmp:
        sf.write(str(tmp), np.clip(wave, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    return p
