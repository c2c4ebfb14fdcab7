"""Offline word alignment in the ``alignment`` contract, and a comparison of aligners.

Every method numbers words the same way, as the whitespace tokens of the text
(:func:`factrace.speech.tts.base.text_words`), and returns one row per text word: known_id, word_index, word,
start_s, end_s, score, method, plus ``reason`` ("" when the word was timed cleanly; otherwise why it was not,
or how it was timed) and ``aligned`` (bool: start_s/end_s are set). A word that cannot be aligned is a row
with NaN times and a reason, never an exception.

Methods
-------
``espeak-onsets``
    The synthesiser's own word events (see :mod:`factrace.speech.tts.onsets`): exact onsets. Words eSpeak
    joins to the previous one ("in the") are split by phoneme count and carry a reason saying so. score = 1.
``pocketsphinx``
    Forced alignment with the en-us acoustic model and CMU dictionary shipped in the ``pocketsphinx`` wheel
    (10 ms frames). Text is lowercased and stripped of punctuation; hyphenated words are split. A token that
    is not in the dictionary (names, numbers) gets eSpeak's own pronunciation, converted from IPA to
    ARPABET (:func:`ipa_to_arpabet`) and added to the decoder dictionary; its row says so in ``reason``. A
    token that has no pronunciation at all is left out of the alignment text and its word is a recorded skip.
    score = mean acoustic log-score per frame (higher is better; NaN when it underflows).
``whisper``
    faster-whisper word timestamps of the transcript, matched to the reference words with
    :class:`difflib.SequenceMatcher` on normalised tokens (:func:`factrace.speech.asr.whisper.normalise_for_wer`).
    Equal words are timed; a substituted word of the same length span is timed with a reason naming what
    Whisper heard; deleted words are skips. score = Whisper's word probability.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
from typing import Any

import numpy as np
import pandas as pd

from factrace.speech.tts.base import is_spoken, text_words

log = logging.getLogger(__name__)

METHODS = ("espeak-onsets", "pocketsphinx", "whisper")
PS_FRAME_S = 0.01  # pocketsphinx default frame rate: 100 frames/s
PAD_S = 0.25  # silence added on both sides before pocketsphinx alignment
DITHER = 1e-4  # amplitude of the seeded Gaussian dither added before pocketsphinx alignment

ALIGN_COLUMNS = ["known_id", "word_index", "word", "start_s", "end_s", "score", "method", "reason", "aligned"]


def alignment_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows -> a table with the alignment contract's dtypes (plus reason/aligned and any extra columns)."""
    df = pd.DataFrame(rows, columns=None if rows else ALIGN_COLUMNS)
    for col in ALIGN_COLUMNS:
        if col not in df.columns:
            df[col] = pd.Series(dtype="object")
    df["known_id"] = df["known_id"].astype("int64")
    df["word_index"] = df["word_index"].astype("int64")
    for col in ("start_s", "end_s", "score"):
        df[col] = df[col].astype("float64")
    for col in ("word", "method", "reason"):
        df[col] = df[col].astype("object")
    df["reason"] = df["reason"].fillna("")
    df["aligned"] = df["start_s"].notna() & df["end_s"].notna()
    return df


def _row(known_id: int, k: int, word: str, method: str, start: float = math.nan, end: float = math.nan,
         score: float = math.nan, reason: str = "") -> dict[str, Any]:
    return {"known_id": int(known_id), "word_index": int(k), "word": word, "start_s": float(start),
            "end_s": float(end), "score": float(score), "method": method, "reason": reason}


def _skip_rows(known_id: int, text: str, method: str, reason: str) -> pd.DataFrame:
    return alignment_frame([_row(known_id, k, w, method, reason=reason) for k, w in enumerate(text_words(text))])


# ------------------------------------------------------------------------------------------ espeak-onsets


def align_espeak_onsets(known_id: int, text: str, synth: Any) -> pd.DataFrame:
    """Alignment rows from a :class:`factrace.speech.tts.base.SynthResult` of ``text`` (backend espeak)."""
    method = "espeak-onsets"
    if synth is None or synth.word_onsets is None:
        return _skip_rows(known_id, text, method, "the synthesiser gave no word onsets (not eSpeak)")
    interp = synth.info.get("interpolated") or [False] * len(synth.word_onsets)
    timed = {k: (on[1], end[1], it) for k, on, end, it in
             zip(synth.word_indices, synth.word_onsets, synth.word_ends, interp)}
    rows = []
    for k, w in enumerate(text_words(text)):
        if k in timed:
            t0, t1, it = timed[k]
            reason = "onset split by phoneme count: eSpeak spoke it joined to the previous word" if it else ""
            rows.append(_row(known_id, k, w, method, t0, t1, 0.5 if it else 1.0, reason))
        elif not is_spoken(w):
            rows.append(_row(known_id, k, w, method, reason="punctuation only: not spoken"))
        else:
            rows.append(_row(known_id, k, w, method, reason="eSpeak emitted no word event for it"))
    return alignment_frame(rows)


# ------------------------------------------------------------------------------------------- pocketsphinx

# eSpeak NG (en-us) IPA phonemes -> CMU/ARPABET phones of the pocketsphinx en-us model.
_IPA_ARPABET: dict[str, list[str]] = {
    # vowels and diphthongs
    "ə": ["AH"], "ʌ": ["AH"], "ɐ": ["AH"], "æ": ["AE"], "a": ["AE"], "ɑ": ["AA"], "ɒ": ["AA"], "ɔ": ["AO"],
    "aɪ": ["AY"], "aʊ": ["AW"], "eɪ": ["EY"], "e": ["EH"], "ɛ": ["EH"], "ɪ": ["IH"], "ᵻ": ["IH"], "i": ["IY"],
    "oʊ": ["OW"], "o": ["OW"], "əʊ": ["OW"], "ɔɪ": ["OY"], "ʊ": ["UH"], "u": ["UW"], "ɚ": ["ER"], "ɜ": ["ER"],
    "ɝ": ["ER"], "əl": ["AH", "L"], "iə": ["IY", "AH"], "ɪə": ["IH", "R"], "eə": ["EH", "R"], "ʊə": ["UH", "R"],
    "ɔːɹ": ["AO", "R"], "ɔɹ": ["AO", "R"], "ɑːɹ": ["AA", "R"], "ɑɹ": ["AA", "R"], "ɛɹ": ["EH", "R"],
    "ɪɹ": ["IH", "R"], "ʊɹ": ["UH", "R"], "oːɹ": ["AO", "R"], "oɹ": ["AO", "R"], "aɪɚ": ["AY", "ER"],
    "aɪə": ["AY", "ER"], "aʊɚ": ["AW", "ER"], "aʊə": ["AW", "ER"], "y": ["UW"], "ø": ["ER"], "œ": ["ER"],
    # consonants
    "b": ["B"], "d": ["D"], "f": ["F"], "ɡ": ["G"], "g": ["G"], "h": ["HH"], "k": ["K"], "l": ["L"], "m": ["M"],
    "n": ["N"], "ŋ": ["NG"], "p": ["P"], "ɹ": ["R"], "r": ["R"], "ɾ": ["D"], "s": ["S"], "ʃ": ["SH"], "t": ["T"],
    "θ": ["TH"], "ð": ["DH"], "v": ["V"], "w": ["W"], "ʍ": ["W"], "j": ["Y"], "z": ["Z"], "ʒ": ["ZH"],
    "tʃ": ["CH"], "dʒ": ["JH"], "ʔ": ["T"], "x": ["K"], "ç": ["HH"], "χ": ["K"], "ɬ": ["L"], "n̩": ["AH", "N"],
    "l̩": ["AH", "L"], "m̩": ["AH", "M"], "ɫ": ["L"], "ʎ": ["L", "Y"], "ɲ": ["N", "Y"], "ts": ["T", "S"],
}
_IPA_DROP = "ˈˌːˑ‿|-"


def ipa_to_arpabet(phonemes: list[str]) -> list[str]:
    """Convert eSpeak IPA phoneme tokens to ARPABET (greedy longest match inside each token).

    Stress and length marks are dropped; unknown symbols are skipped (and logged at debug level).
    """
    keys = sorted(_IPA_ARPABET, key=len, reverse=True)
    out: list[str] = []
    for tok in phonemes:
        whole = tok.replace("ː", "")
        full = "".join(c for c in tok if c not in "ˈˌ")
        if full in _IPA_ARPABET:
            out.extend(_IPA_ARPABET[full])
            continue
        s = "".join(c for c in whole if c not in _IPA_DROP)
        i = 0
        while i < len(s):
            for k in keys:
                if s.startswith(k, i):
                    out.extend(_IPA_ARPABET[k])
                    i += len(k)
                    break
            else:
                log.debug("no ARPABET for IPA symbol %r in %r", s[i], tok)
                i += 1
    return out


def ps_tokens(word: str) -> list[str]:
    """The pocketsphinx dictionary tokens of one text word: lowercased, punctuation stripped, hyphens split."""
    from factrace.speech.asr.whisper import strip_accents

    w = strip_accents(word).lower().replace("’", "'")
    w = re.sub(r"[-\u2010-\u2015/]", " ", w)
    toks = []
    for t in w.split():
        t = re.sub(r"[^a-z0-9']", "", t).strip("'")
        if t:
            toks.append(t)
    return toks


class PocketsphinxAligner:
    """A reusable pocketsphinx decoder (en-us model and dictionary from the wheel) for forced alignment."""

    def __init__(self, voice: str = "en-us"):
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, loglevel="FATAL")
        self.voice = voice
        self._added: dict[str, str] = {}  # pronunciation -> dictionary name

    def pronounce(self, token: str) -> tuple[str | None, str]:
        """(dictionary word for ``token`` or None, note). OOV tokens get eSpeak's pronunciation."""
        if self.decoder.lookup_word(token) is not None:
            return token, ""
        from factrace.speech.tts.espeak import espeak_phonemes

        try:
            phones = ipa_to_arpabet([p for w in espeak_phonemes(token, self.voice) for p in w])
        except Exception as err:  # noqa: BLE001 - recorded, not raised
            return None, f"out of vocabulary and eSpeak gave no pronunciation ({err})"
        if not phones:
            return None, "out of vocabulary and eSpeak gave no pronunciation"
        pron = " ".join(phones)
        name = self._added.get(pron)
        if name is None:
            name = f"oov{len(self._added)}_{re.sub(r'[^a-z0-9]', '', token)[:20]}"
            self.decoder.add_word(name, pron, True)
            self._added[pron] = name
        return name, f"out of vocabulary: eSpeak pronunciation /{pron}/"

    def align(self, known_id: int, text: str, wave: np.ndarray) -> pd.DataFrame:
        """Align ``text`` to ``wave`` (16 kHz mono float32)."""
        method = "pocketsphinx"
        words = text_words(text)
        plan: list[tuple[int, list[str], str]] = []  # (word index, dictionary words, note)
        rows: dict[int, dict[str, Any]] = {}
        for k, w in enumerate(words):
            toks = ps_tokens(w)
            if not toks:
                rows[k] = _row(known_id, k, w, method, reason="punctuation only: not spoken")
                continue
            names, notes = [], []
            for t in toks:
                name, note = self.pronounce(t)
                if name is None:
                    names = []
                    notes = [note]
                    break
                names.append(name)
                if note:
                    notes.append(note)
            if not names:
                rows[k] = _row(known_id, k, w, method, reason="; ".join(notes) or "no pronunciation")
                continue
            plan.append((k, names, "; ".join(notes)))
        if not plan:
            return alignment_frame([rows[k] for k in sorted(rows)])
        # pocketsphinx fails on digital silence (log of zero energy) and on speech that starts at sample 0:
        # pad with PAD_S of silence and add seeded dither of DITHER amplitude; frames are shifted back below
        rng = np.random.default_rng(0)
        n_pad = round(PAD_S * 16000)
        x = np.concatenate([np.zeros(n_pad, np.float32), wave.astype(np.float32), np.zeros(n_pad, np.float32)])
        x = x + DITHER * rng.standard_normal(len(x)).astype(np.float32)
        pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
        dur = len(wave) / 16000
        seq = [n for _, names, _ in plan for n in names]
        d = self.decoder
        try:
            d.set_align_text(" ".join(seq))
            d.start_utt()
            d.process_raw(pcm, full_utt=True)
            d.end_utt()
            segs = [s for s in (d.seg() or []) if not _ps_filler(s.word)]
        except RuntimeError as err:
            segs, fail = [], f"pocketsphinx alignment failed ({err})"
        else:
            fail = "pocketsphinx found no alignment (text and audio disagree?)"
        if [re.sub(r"\(\d+\)$", "", s.word) for s in segs] != seq:
            for k, _names, _note in plan:
                rows[k] = _row(known_id, k, words[k], method, reason=fail)
            return alignment_frame([rows[k] for k in sorted(rows)])
        i = 0
        for k, names, note in plan:
            mine = segs[i:i + len(names)]
            i += len(names)
            f0, f1 = mine[0].start_frame, mine[-1].end_frame + 1
            logs = [math.log(s.ascore) for s in mine if s.ascore > 0]
            score = sum(logs) / max(1, f1 - f0) if len(logs) == len(mine) else math.nan
            t0 = min(max(f0 * PS_FRAME_S - PAD_S, 0.0), dur)
            t1 = min(max(f1 * PS_FRAME_S - PAD_S, 0.0), dur)
            rows[k] = _row(known_id, k, words[k], method, t0, t1, score, note)
        return alignment_frame([rows[k] for k in sorted(rows)])


def _ps_filler(word: str) -> bool:
    return word in ("<s>", "</s>", "<sil>") or (word.startswith("[") and word.endswith("]")) or word.startswith("++")


_PS: dict[str, PocketsphinxAligner] = {}


def align_pocketsphinx(known_id: int, text: str, audio: str | os.PathLike[str] | np.ndarray) -> pd.DataFrame:
    """Forced alignment of ``text`` with pocketsphinx (``audio``: a file or a 16 kHz mono waveform)."""
    from factrace.speech.audio import BadAudioError, prepare_audio

    if not isinstance(audio, np.ndarray):
        try:
            audio, _ = prepare_audio(audio)
        except BadAudioError as err:
            return _skip_rows(known_id, text, "pocketsphinx", f"unusable audio: {err.problem}")
    if "en-us" not in _PS:
        _PS["en-us"] = PocketsphinxAligner()
    return _PS["en-us"].align(known_id, text, audio)


# ------------------------------------------------------------------------------------------------ whisper


def align_whisper(
    known_id: int, text: str, audio: str | os.PathLike[str] | None = None, model: str | Any = None,
    transcript: Any = None, **opts: Any,
) -> pd.DataFrame:
    """Word times from faster-whisper word timestamps, matched to the words of ``text``.

    Give either ``audio`` (transcribed here with ``model``) or a ready ``transcript``
    (:class:`factrace.speech.asr.whisper.Transcript`).
    """
    from factrace.speech.asr.whisper import normalise_for_wer, transcribe
    from factrace.speech.audio import BadAudioError

    method = "whisper"
    if transcript is None:
        try:
            transcript = transcribe([audio], model, word_timestamps=True, **opts)[0]
        except BadAudioError as err:
            return _skip_rows(known_id, text, method, f"unusable audio: {err.problem}")
    words = text_words(text)
    ref: list[tuple[str, int]] = [(t, k) for k, w in enumerate(words) for t in normalise_for_wer(w).split()]
    hyp: list[tuple[str, int]] = [(t, j) for j, hw in enumerate(transcript.words)
                                  for t in normalise_for_wer(hw.word).split()]
    sm = difflib.SequenceMatcher(a=[t for t, _ in ref], b=[t for t, _ in hyp], autojunk=False)
    owner: dict[int, list[int]] = {}  # text word -> whisper words
    subst: dict[int, list[str]] = {}
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op == "equal" or (op == "replace" and a1 - a0 == b1 - b0):
            for da in range(a1 - a0):
                k, j = ref[a0 + da][1], hyp[b0 + da][1]
                owner.setdefault(k, []).append(j)
                if op == "replace":
                    subst.setdefault(k, []).append(hyp[b0 + da][0])
        elif op == "replace":  # unequal spans: time the span as a whole onto its first/last text word
            ks = sorted({ref[i][1] for i in range(a0, a1)})
            js = sorted({hyp[i][1] for i in range(b0, b1)})
            heard = " ".join(hyp[i][0] for i in range(b0, b1))
            if len(ks) == 1:
                owner.setdefault(ks[0], []).extend(js)
                subst.setdefault(ks[0], []).append(heard)
    rows = []
    for k, w in enumerate(words):
        if not normalise_for_wer(w):
            rows.append(_row(known_id, k, w, method, reason="punctuation only: not spoken"))
        elif k in owner:
            hw = [transcript.words[j] for j in sorted(set(owner[k]))]
            reason = f"timed from a substituted word: Whisper heard {' '.join(subst[k])!r}" if k in subst else ""
            prob = float(np.mean([x.probability for x in hw]))
            rows.append(_row(known_id, k, w, method, hw[0].start_s, hw[-1].end_s, prob, reason))
        else:
            rows.append(_row(known_id, k, w, method, reason="Whisper did not transcribe this word"))
    return alignment_frame(rows)


# --------------------------------------------------------------------------------------------- comparison


def boundary_disagreement(a: pd.DataFrame, b: pd.DataFrame, clean_only: bool = False) -> dict[str, float]:
    """Disagreement of word starts between two alignments of the same utterances.

    Words are matched on (known_id, [field,] word_index) and must have the same text and finite starts in
    both. ``clean_only`` also requires an empty ``reason`` on both sides. Returns
    ``{"median_ms", "p95_ms", "mean_ms", "n"}`` of |start_a - start_b| (NaN statistics when n = 0).
    """
    keys = ["known_id", "word_index"] + (["field"] if "field" in a.columns and "field" in b.columns else [])
    cols = keys + ["word", "start_s"] + (["reason"] if clean_only else [])
    m = a[cols].merge(b[cols], on=keys, suffixes=("_a", "_b"))
    m = m[(m["word_a"] == m["word_b"]) & np.isfinite(m["start_s_a"]) & np.isfinite(m["start_s_b"])]
    if clean_only:
        m = m[(m["reason_a"].fillna("") == "") & (m["reason_b"].fillna("") == "")]
    d = (m["start_s_a"] - m["start_s_b"]).abs().to_numpy() * 1000.0
    if len(d) == 0:
        return {"median_ms": math.nan, "p95_ms": math.nan, "mean_ms": math.nan, "n": 0}
    return {"median_ms": float(np.median(d)), "p95_ms": float(np.percentile(d, 95)),
            "mean_ms": float(np.mean(d)), "n": len(d)}
