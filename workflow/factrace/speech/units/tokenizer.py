"""Speech tokens (discrete units at 25 Hz) and SpiritLM-style deduplication.

Backends:

- ``mfcc-kmeans`` (offline default): MFCCs computed with numpy/scipy on 40 ms frames with a 40 ms hop (25 Hz at
  16 kHz: 640 samples), optional deltas, per-dimension standardisation with corpus statistics, and k-means
  (scikit-learn, seeded) with ``k`` units fitted on the prompt audio. Frame ``i`` covers samples
  ``[i*hop, (i+1)*hop)``; the last partial frame is zero-padded, so an utterance of M samples has
  ``ceil(M / hop)`` units and paper eq. (2) (``end = ceil(s_end * 25)``) never exceeds the sequence length.
  The fitted model is one ``.npz`` resource: centroids, mean, std and the feature settings (JSON).
- ``spiritlm`` (cluster): SpiritLM's HuBERT 25 Hz features (layer 11) + the 500-unit linear quantizer, called
  through the ``spiritlm`` package (``spiritlm.speech_tokenizer.hubert.hubert_tokenizer.HubertTokenizer``), with
  checkpoints ``<dir>/speech_tokenizer/hubert_25hz/{mhubert_base_25hz.pt, L11_quantizer_500.pt}`` where
  ``<dir>`` is the config key ``speech.units.checkpoints_dir`` or the env var ``SPIRITLM_CHECKPOINTS_DIR``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from factrace.speech.align.emissions import resample

RATE_HZ = 25.0
SAMPLE_RATE = 16000


class SpeechTokenizerUnavailable(RuntimeError):
    """A speech-token backend cannot be used (package or checkpoint file missing)."""


class SpeechTokenizer(Protocol):
    backend: str
    rate_hz: float
    n_units: int

    def encode(self, wave: np.ndarray, sr: int) -> np.ndarray: ...


# ---------------------------------------------------------------- deduplication


def deduplicate(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse consecutive repeats as SpiritLM does: (deduplicated units, run length of each)."""
    units = np.asarray(units, dtype=np.int64)
    if units.size == 0:
        return units.copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
    lengths = np.diff(np.r_[starts, units.size])
    return units[starts], lengths.astype(np.int64)


def expand(dedup_units: np.ndarray, run_lengths: np.ndarray) -> np.ndarray:
    """Inverse of :func:`deduplicate`."""
    return np.repeat(np.asarray(dedup_units, dtype=np.int64), np.asarray(run_lengths, dtype=np.int64))


# ---------------------------------------------------------------- features (numpy / scipy only)


@dataclass(frozen=True)
class FeatureSettings:
    sample_rate: int = SAMPLE_RATE
    hop: int = 640  # 40 ms -> 25 Hz
    win: int = 640  # 40 ms
    n_fft: int = 1024
    n_mels: int = 40
    n_mfcc: int = 13
    fmin: float = 20.0
    fmax: float = 8000.0
    preemphasis: float = 0.97
    deltas: bool = True

    @property
    def rate_hz(self) -> float:
        return self.sample_rate / self.hop


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangular HTK-mel filters."""
    fmax = min(fmax, sr / 2)
    mels = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    hz = _mel_to_hz(mels)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, mid, hi = hz[i], hz[i + 1], hz[i + 2]
        rise = (freqs - lo) / max(mid - lo, 1e-9)
        fall = (hi - freqs) / max(hi - mid, 1e-9)
        fb[i] = np.maximum(0.0, np.minimum(rise, fall))
    return fb


def frames(wave: np.ndarray, hop: int, win: int) -> np.ndarray:
    """(ceil(M/hop), win) frames; frame i starts at sample i*hop; zero-padded at the end."""
    wave = np.asarray(wave, dtype=np.float64)
    n = max(1, int(np.ceil(wave.size / hop)))
    padded = np.zeros((n - 1) * hop + win)
    padded[: wave.size] = wave[: padded.size]
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    return padded[idx]


def log_mel(wave: np.ndarray, sr: int, settings: FeatureSettings = FeatureSettings()) -> np.ndarray:
    """(n_frames, n_mels) log-mel energies at the settings' hop (also used for the figures)."""
    wave = resample(wave, sr, settings.sample_rate).astype(np.float64)
    if settings.preemphasis:
        wave = np.r_[wave[:1], wave[1:] - settings.preemphasis * wave[:-1]]
    fr = frames(wave, settings.hop, settings.win) * np.hamming(settings.win)[None, :]
    power = np.abs(np.fft.rfft(fr, n=max(settings.n_fft, settings.win), axis=1)) ** 2
    fb = mel_filterbank(settings.sample_rate, max(settings.n_fft, settings.win), settings.n_mels,
                        settings.fmin, settings.fmax)
    return np.log(power @ fb.T + 1e-10)


def deltas(feats: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over +-``width`` frames (edges repeated)."""
    if feats.shape[0] == 0:
        return feats.copy()
    padded = np.pad(feats, ((width, width), (0, 0)), mode="edge")
    n = feats.shape[0]
    num = sum(k * (padded[width + k: width + k + n] - padded[width - k: width - k + n]) for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def mfcc(wave: np.ndarray, sr: int, settings: FeatureSettings = FeatureSettings()) -> np.ndarray:
    """(n_frames, n_mfcc [x3 with deltas]) MFCC features at 25 Hz."""
    from scipy.fft import dct

    feats = dct(log_mel(wave, sr, settings), type=2, axis=1, norm="ortho")[:, : settings.n_mfcc]
    if settings.deltas:
        d1 = deltas(feats)
        feats = np.concatenate([feats, d1, deltas(d1)], axis=1)
    return feats


# ---------------------------------------------------------------- mfcc-kmeans backend


@dataclass
class MfccKMeansUnits:
    """Offline speech tokenizer: MFCC frames -> nearest k-means centroid."""

    centroids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    settings: FeatureSettings
    seed: int = 0
    backend: str = field(default="mfcc-kmeans", init=False)  # what this class is, not a setting

    @property
    def rate_hz(self) -> float:
        return self.settings.rate_hz

    @property
    def n_units(self) -> int:
        return int(self.centroids.shape[0])

    def features(self, wave: np.ndarray, sr: int) -> np.ndarray:
        return (mfcc(wave, sr, self.settings) - self.mean) / self.std

    def encode(self, wave: np.ndarray, sr: int) -> np.ndarray:
        x = self.features(wave, sr)
        d = (x * x).sum(1)[:, None] - 2 * x @ self.centroids.T + (self.centroids**2).sum(1)[None, :]
        return d.argmin(1).astype(np.int64)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the ``.npz`` resource atomically."""
        from factrace.core.io import atomic_path

        meta = {"backend": self.backend, "seed": self.seed, "settings": asdict(self.settings)}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, centroids=self.centroids, mean=self.mean, std=self.std,
                     meta=np.array(json.dumps(meta, sort_keys=True)))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MfccKMeansUnits:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return cls(z["centroids"], z["mean"], z["std"], FeatureSettings(**meta["settings"]), int(meta["seed"]))


def fit_mfcc_kmeans(
    waves: list[tuple[np.ndarray, int]], k: int, seed: int = 0,
    settings: FeatureSettings = FeatureSettings(), n_init: int = 3, max_iter: int = 100,
) -> MfccKMeansUnits:
    """Fit ``k`` units on the MFCC frames of ``waves`` (list of (wave, sr)); deterministic for a seed."""
    from sklearn.cluster import KMeans

    feats = np.concatenate([mfcc(w, sr, settings) for w, sr in waves], axis=0) if waves else np.zeros((0, 1))
    if feats.shape[0] < k:
        raise ValueError(f"only {feats.shape[0]} feature frames to fit k={k} units: lower speech.units.k")
    mean = feats.mean(0)
    std = feats.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    x = (feats - mean) / std
    km = KMeans(n_clusters=k, random_state=seed, n_init=n_init, max_iter=max_iter).fit(x)
    return MfccKMeansUnits(km.cluster_centers_.astype(np.float64), mean, std, settings, seed)


# ---------------------------------------------------------------- spiritlm backend (cluster)

SPIRITLM_FILES = ("mhubert_base_25hz.pt", "L11_quantizer_500.pt")


def spiritlm_checkpoint_paths(checkpoints_dir: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    """The HuBERT and quantizer checkpoint paths; raises SpeechTokenizerUnavailable naming what is missing.

    ``checkpoints_dir`` (config ``speech.units.checkpoints_dir``, else env ``SPIRITLM_CHECKPOINTS_DIR``) is
    SpiritLM's ``checkpoints`` directory (holding ``speech_tokenizer/hubert_25hz/``); a directory that itself
    holds ``hubert_25hz/`` or the two files is accepted too.
    """
    base = checkpoints_dir or os.environ.get("SPIRITLM_CHECKPOINTS_DIR")
    if not base:
        raise SpeechTokenizerUnavailable(
            "speech-token backend 'spiritlm' needs its checkpoints: set config key `speech.units.checkpoints_dir` "
            "or env var SPIRITLM_CHECKPOINTS_DIR to SpiritLM's checkpoints directory"
        )
    base = Path(base)
    candidates = [base / "speech_tokenizer" / "hubert_25hz", base / "hubert_25hz", base]
    for cand in candidates:
        if all((cand / f).is_file() for f in SPIRITLM_FILES):
            return cand / SPIRITLM_FILES[0], cand / SPIRITLM_FILES[1]
    expected = ", ".join(str(candidates[0] / f) for f in SPIRITLM_FILES)
    raise SpeechTokenizerUnavailable(
        f"SpiritLM speech-tokenizer checkpoints not found: expected {expected} "
        "(config key `speech.units.checkpoints_dir` / env SPIRITLM_CHECKPOINTS_DIR)"
    )


class SpiritLMUnits:
    """SpiritLM's HuBERT 25 Hz + 500-unit quantizer, called through the ``spiritlm`` package."""

    backend = "spiritlm"
    rate_hz = RATE_HZ
    n_units = 500
    max_chunk = 100 * SAMPLE_RATE  # as spiritlm's SpiritLMTokenizer.encode_units
    min_chunk = 1280

    def __init__(self, checkpoints_dir: str | os.PathLike[str] | None, device: str = "auto"):
        try:
            from spiritlm.speech_tokenizer.hubert.hubert_tokenizer import HubertTokenizer
        except ImportError as err:
            raise SpeechTokenizerUnavailable(
                "speech-token backend 'spiritlm' needs the package `spiritlm` (not on PyPI): install it from "
                f"source, pip install -e <clone of github.com/facebookresearch/spiritlm> ({err})"
            ) from err
        hubert_ckpt, quantizer_ckpt = spiritlm_checkpoint_paths(checkpoints_dir)
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = HubertTokenizer(
            hubert_ckpt=hubert_ckpt, hubert_layer=11, quantizer_ckpt=quantizer_ckpt, is_linear_quantizer=True,
        ).to(device)
        self.hubert_ckpt = hubert_ckpt

    def encode(self, wave: np.ndarray, sr: int) -> np.ndarray:
        import torch

        wave = torch.from_numpy(resample(wave, sr, SAMPLE_RATE))
        out: list[np.ndarray] = []
        for start in range(0, wave.numel(), self.max_chunk):
            chunk = wave[start: start + self.max_chunk]
            if chunk.numel() < self.min_chunk:
                continue
            out.append(self.model(chunk).reshape(-1).cpu().numpy())
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def load_speech_tokenizer(
    backend: str, units_npz: str | os.PathLike[str] | None = None, *,
    checkpoints_dir: str | os.PathLike[str] | None, device: str = "auto",
) -> SpeechTokenizer:
    """``mfcc-kmeans`` (needs ``units_npz``) or ``spiritlm`` (needs the checkpoints)."""
    if backend == "mfcc-kmeans":
        if units_npz is None or not Path(units_npz).is_file():
            raise SpeechTokenizerUnavailable(f"mfcc-kmeans units file missing: {units_npz} (run fit-units first)")
        return MfccKMeansUnits.load(units_npz)
    if backend == "spiritlm":
        return SpiritLMUnits(checkpoints_dir, device=device)
    raise ValueError(f"unknown speech-token backend {backend!r} (mfcc-kmeans | spiritlm)")
