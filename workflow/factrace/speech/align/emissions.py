"""CTC emissions for forced alignment: backend ``hubert-ctc`` (``facebook/hubert-large-ls960-ft``, paper App. A).

The model is read from a local directory in the Hugging Face layout (config.json, weights,
preprocessor_config.json, vocab.json, tokenizer_config.json) with ``local_files_only=True``: nothing is ever
downloaded here. On GPU the model runs in bfloat16 by default, on CPU in float32; the log-softmax is always
taken in float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factrace.speech.align import ctc
from factrace.speech.align.normalise import normalise

METHOD = "hubert-ctc"
SAMPLE_RATE = 16000


class EmitterUnavailable(RuntimeError):
    """The CTC model directory is missing or incomplete."""


def resample(wave: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling to ``target_sr`` (no-op when the rates match)."""
    wave = np.asarray(wave, dtype=np.float32)
    if sr == target_sr:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(sr), int(target_sr))
    return resample_poly(wave, target_sr // g, sr // g).astype(np.float32)


def _resolve_device_dtype(device: str, dtype: str) -> tuple[Any, Any]:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    return torch.device(device), getattr(torch, dtype)


@dataclass
class CTCEmitter:
    """A CTC acoustic model: ``emitter(wave, sr)`` gives (T, C) log-probabilities over ``labels``."""

    model: Any
    feature_extractor: Any
    labels: list[str]
    blank_id: int
    separator: str = "|"
    sample_rate: int = SAMPLE_RATE
    device: Any = "cpu"
    dtype: Any = None
    model_id: str = ""

    @property
    def vocab(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def from_pretrained(cls, model_dir: str | os.PathLike[str], device: str = "auto", dtype: str = "auto"):
        """Load ``HubertForCTC`` and its processor from a local directory (never downloads)."""
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise EmitterUnavailable(
                f"CTC model directory {path} has no config.json: put the files of facebook/hubert-large-ls960-ft "
                "there (config key `speech.alignment.ctc_model`)"
            )
        from transformers import HubertForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

        try:
            tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(str(path), local_files_only=True)
            feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(path), local_files_only=True)
        except OSError as err:
            raise EmitterUnavailable(f"{path}: tokenizer/feature-extractor files missing ({err})") from err
        torch_device, torch_dtype = _resolve_device_dtype(device, dtype)
        model = HubertForCTC.from_pretrained(str(path), local_files_only=True)
        model = model.to(device=torch_device, dtype=torch_dtype).eval()
        vocab = tokenizer.get_vocab()
        n_out = model.config.vocab_size
        by_id = {i: tok for tok, i in vocab.items()}
        labels = [by_id.get(i, f"<{i}>") for i in range(n_out)]
        blank = model.config.pad_token_id if model.config.pad_token_id is not None else tokenizer.pad_token_id
        return cls(
            model=model,
            feature_extractor=feature_extractor,
            labels=labels,
            blank_id=int(blank),
            separator=tokenizer.word_delimiter_token or "|",
            sample_rate=int(feature_extractor.sampling_rate),
            device=torch_device,
            dtype=torch_dtype,
            model_id=str(getattr(model.config, "_name_or_path", "") or path),
        )

    def __call__(self, wave: np.ndarray, sr: int) -> np.ndarray:
        """(T, C) float32 log-softmax emissions for a mono waveform."""
        import torch

        wave = resample(wave, sr, self.sample_rate)
        inputs = self.feature_extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        values = inputs["input_values"].to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            logits = self.model(values).logits[0]
        return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()


def load_emitter(model_dir: str | os.PathLike[str], device: str = "auto", dtype: str = "auto") -> CTCEmitter:
    return CTCEmitter.from_pretrained(model_dir, device=device, dtype=dtype)


def align_ctc(
    wave: np.ndarray, sr: int, transcript: str, emitter: CTCEmitter, known_id: int = -1
) -> pd.DataFrame:
    """Force-align ``transcript`` (raw prompt text) to ``wave``: rows of the ``alignment`` contract.

    The text is normalised (:mod:`normalise`); each row is one spoken word with its times by paper eq. (1),
    the mean emission probability as ``score``, and the character span of the prompt it was read from
    (``char_start``, ``char_end``). Raises :class:`ctc.AlignmentError` when the text cannot be aligned.
    """
    norm = normalise(transcript, emitter.separator)
    if not norm.words:
        raise ctc.AlignmentError(f"no speakable words in {transcript!r}")
    wave16 = resample(wave, sr, emitter.sample_rate)
    emission = emitter(wave16, emitter.sample_rate)
    words, _, _, _ = ctc.align(emission, norm.transcript, emitter.vocab, emitter.blank_id, emitter.separator)
    if len(words) != len(norm.words):  # pragma: no cover - guaranteed by construction
        raise ctc.AlignmentError(f"{len(words)} aligned words for {len(norm.words)} spoken words")
    ratio = len(wave16) / emission.shape[0]
    rows = [
        {
            "known_id": int(known_id), "word_index": i, "word": seg.label,
            "start_s": ctc.frames_to_seconds(seg.start, ratio, emitter.sample_rate),
            "end_s": ctc.frames_to_seconds(seg.end, ratio, emitter.sample_rate),
            "score": float(seg.score), "method": METHOD,
            "char_start": sw.char_start, "char_end": sw.char_end,
        }
        for i, (seg, sw) in enumerate(zip(words, norm.words, strict=True))
    ]
    return pd.DataFrame(rows)
