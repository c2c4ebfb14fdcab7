"""Map each text token of a prompt to its range of speech tokens (paper, Appendix A, eq. 2).

Steps, for one prompt:

1. *Word times.* The prompt is normalised (:mod:`.align.normalise`) into spoken words, each tied to a character span
   of the prompt. The aligner's words (``alignment`` rows: word, start_s, end_s) are normalised the same way
   (a row whose word spells out to several spoken words has its time split in proportion to characters) and
   matched to the prompt's spoken words in order (difflib; equal runs one to one, replaced runs share their
   time span in proportion to characters). Spoken words of one written token ("1990" -> NINETEEN NINETY)
   are merged back into one written span with the union of their times.
2. *Token times.* A text token (HF offsets ``[a, b)``) covers the written spans it overlaps. A token inside
   one written word (a subword) gets the part of that word's time span proportional to its characters:
   ``t(c) = t0 + (c - c0) / (c1 - c0) * (t1 - t0)``. Tokens with no spoken content (spaces, punctuation,
   special tokens, or words the aligner did not time) get an empty range.
3. *Speech-token ranges.* Eq. (2): ``start = floor(s_start * tr)``, ``end = ceil(s_end * tr)`` (tr = 25 Hz),
   computed with a 1e-9 tolerance so that 0.12 * 25 counts as 3, clipped to ``[0, n_frames]``. With
   deduplicated units, frame ``f`` belongs to run ``r(f)`` (from the run lengths) and the range becomes
   ``[r(start), r(end - 1) + 1)``.
4. *Overlaps.* Floor/ceil and deduplicated runs make neighbours share a boundary frame/run. Rule, applied left
   to right over tokens with content: **a shared boundary unit goes to the later token** (the earlier token
   ends where the next one starts), except that a token never drops to zero length: if it would, it keeps one
   unit and the next token starts after it. Tokens without content get the empty range ``[p, p)`` at the end
   ``p`` of the previous content token (0 at the start). Gaps (silences) stay unassigned.
5. *Validation* (:class:`TokenMapError`): ranges ordered and non-overlapping, within ``[0, n]``, and the
   subject's text tokens (those overlapping the subject at the template's ``{}``,
   :func:`factrace.facts.subject.subject_token_range`, the same rule as text tracing) cover a non-empty range.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factrace.core.tokens import token_text
from factrace.speech.align.normalise import Normalised, normalise

RATE_HZ = 25.0
_EPS = 1e-9


class TokenMapError(ValueError):
    """A prompt's text tokens cannot be mapped to speech tokens consistently."""


@dataclass(frozen=True)
class WrittenSpan:
    char_start: int
    char_end: int
    t_start: float
    t_end: float

    def time_at(self, c: int) -> float:
        c = min(max(c, self.char_start), self.char_end)
        frac = (c - self.char_start) / max(self.char_end - self.char_start, 1)
        return self.t_start + frac * (self.t_end - self.t_start)


# ---------------------------------------------------------------- step 1: word times


def _split(times: tuple[float, float], lengths: Sequence[int]) -> list[tuple[float, float]]:
    t0, t1 = times
    cum = np.concatenate([[0.0], np.cumsum(lengths, dtype=np.float64)])
    cum /= cum[-1] if cum[-1] > 0 else 1.0
    return [(t0 + cum[i] * (t1 - t0), t0 + cum[i + 1] * (t1 - t0)) for i in range(len(lengths))]


def word_times(norm: Normalised, words: Sequence[tuple[str, float, float]]) -> list[tuple[float, float] | None]:
    """Time span of each spoken word of ``norm`` from aligned ``(word, start_s, end_s)``; None when untimed."""
    pieces: list[tuple[str, float, float]] = []
    for word, s, e in words:
        texts = normalise(str(word)).texts
        for text, (a, b) in zip(texts, _split((float(s), float(e)), [len(t) for t in texts]), strict=True):
            pieces.append((text, a, b))
    a_txt = [p[0] for p in pieces]
    b_txt = norm.texts
    out: list[tuple[float, float] | None] = [None] * len(b_txt)
    matcher = difflib.SequenceMatcher(a=a_txt, b=b_txt, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                out[j1 + k] = (pieces[i1 + k][1], pieces[i1 + k][2])
        elif tag == "replace":
            span = (pieces[i1][1], pieces[i2 - 1][2])
            for k, t in enumerate(_split(span, [len(x) for x in b_txt[j1:j2]])):
                out[j1 + k] = t
    return out


def written_spans(norm: Normalised, times: Sequence[tuple[float, float] | None]) -> list[WrittenSpan]:
    """Timed written tokens (union of their spoken words' times), in text order."""
    groups: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for w, t in zip(norm.words, times, strict=True):
        if t is not None:
            groups.setdefault((w.char_start, w.char_end), []).append(t)
    return [
        WrittenSpan(a, b, min(t[0] for t in ts), max(t[1] for t in ts)) for (a, b), ts in sorted(groups.items())
    ]


# ---------------------------------------------------------------- steps 2-5


def token_times(offsets: Sequence[tuple[int, int]], spans: Sequence[WrittenSpan]) -> list[tuple[float, float] | None]:
    """Time span of each text token (None: no spoken content)."""
    out: list[tuple[float, float] | None] = []
    for a, b in offsets:
        hit = [s for s in spans if s.char_start < b and s.char_end > a] if b > a else []
        if not hit:
            out.append(None)
            continue
        out.append((hit[0].time_at(max(a, hit[0].char_start)), hit[-1].time_at(min(b, hit[-1].char_end))))
    return out


def seconds_to_units(s_start: float, s_end: float, rate_hz: float = RATE_HZ) -> tuple[int, int]:
    """Paper eq. (2): (floor(s_start * tr), ceil(s_end * tr))."""
    return math.floor(s_start * rate_hz + _EPS), math.ceil(s_end * rate_hz - _EPS)


def frame_to_run(run_lengths: Sequence[int]) -> np.ndarray:
    """Run index of every frame of the non-deduplicated sequence."""
    rl = np.asarray(run_lengths, dtype=np.int64)
    return np.repeat(np.arange(rl.size), rl)


def resolve(ranges: Sequence[tuple[int, int] | None], n: int) -> list[tuple[int, int]]:
    """Apply the overlap rule (module docstring, step 4); None entries become empty ranges at the cursor."""
    content = [i for i, r in enumerate(ranges) if r is not None]
    nxt = {content[k]: content[k + 1] for k in range(len(content) - 1)}
    out: list[tuple[int, int]] = []
    cursor = 0
    for i, r in enumerate(ranges):
        if r is None:
            out.append((cursor, cursor))
            continue
        s = min(max(r[0], cursor), n)
        e = r[1]
        if i in nxt:
            e = min(e, max(ranges[nxt[i]][0], s))  # shared boundary unit -> later token
        if e <= s:
            e = s + 1  # never drop a token with content to zero length
        e = min(e, n)
        out.append((s, e))
        cursor = e
    return out


def validate(ranges: Sequence[tuple[int, int]], n: int, subject: Sequence[bool], where: str = "") -> None:
    prev_end = 0
    for i, (s, e) in enumerate(ranges):
        if not 0 <= s <= e <= n:
            raise TokenMapError(f"{where}token {i}: range [{s}, {e}) outside [0, {n}] or reversed")
        if s < prev_end:
            raise TokenMapError(f"{where}token {i}: range [{s}, {e}) overlaps the previous one (ends {prev_end})")
        prev_end = max(prev_end, e)
    subj = [r for r, is_s in zip(ranges, subject, strict=True) if is_s]
    if not subj:
        raise TokenMapError(f"{where}no text token covers the subject")
    if max(e for _, e in subj) <= min(s for s, _ in subj) or all(s == e for s, e in subj):
        raise TokenMapError(f"{where}the subject's text tokens have no speech tokens (empty range)")


def subject_mask(
    prompt: str, subject: str, offsets: Sequence[tuple[int, int]], template: str | None = None,
) -> list[bool]:
    """Per text token: is it one of the subject's tokens (at the template's ``{}``, as in text tracing)."""
    from factrace.facts.subject import SubjectNotFoundError, subject_token_range

    try:
        start, end = subject_token_range(offsets, prompt, subject, template)
    except SubjectNotFoundError as err:
        raise TokenMapError(str(err)) from err
    return [start <= i < end for i in range(len(offsets))]


def map_tokens(
    prompt: str, subject: str, offsets: Sequence[tuple[int, int]],
    words: Sequence[tuple[str, float, float]], n_frames: int,
    run_lengths: Sequence[int] | None = None, rate_hz: float = RATE_HZ, template: str | None = None,
) -> tuple[list[tuple[int, int]], list[bool]]:
    """Speech-token range of each text token and the subject mask.

    ``n_frames`` is the length of the non-deduplicated unit sequence; with ``run_lengths`` (summing to
    ``n_frames``) the ranges index the deduplicated sequence.
    """
    if run_lengths is not None and int(np.sum(run_lengths)) != n_frames:
        raise TokenMapError(f"run lengths sum to {int(np.sum(run_lengths))}, not to the {n_frames} frames")
    subject_flags = subject_mask(prompt, subject, offsets, template)
    norm = normalise(prompt)
    words = [(w, s, e) for w, s, e in words if np.isfinite(s) and np.isfinite(e) and e >= s]
    if not words:
        raise TokenMapError("no aligned words")
    spans = written_spans(norm, word_times(norm, words))
    times = token_times(offsets, spans)
    raw: list[tuple[int, int] | None] = []
    for t in times:
        if t is None:
            raw.append(None)
            continue
        s, e = seconds_to_units(*t, rate_hz=rate_hz)
        s, e = min(max(s, 0), n_frames), min(max(e, 0), n_frames)
        raw.append((s, max(s, e)))
    n = n_frames
    if run_lengths is not None:
        runs = frame_to_run(run_lengths)
        n = len(run_lengths)
        raw = [
            None if r is None else (
                int(runs[r[0]]) if r[0] < n_frames else n,
                int(runs[r[1] - 1]) + 1 if r[1] > r[0] else (int(runs[r[0]]) if r[0] < n_frames else n),
            )
            for r in raw
        ]
    ranges = resolve(raw, n)
    validate(ranges, n, subject_flags)
    return ranges, subject_flags


def token_map_rows(
    known_id: int, model: str, prompt: str, subject: str, tokens: Sequence[str],
    offsets: Sequence[tuple[int, int]], words: Sequence[tuple[str, float, float]], n_frames: int,
    run_lengths: Sequence[int] | None = None, rate_hz: float = RATE_HZ, template: str | None = None,
) -> pd.DataFrame:
    """Rows of the ``token_map`` contract (+ ``token_text``, ``is_subject``, ``char_start``, ``char_end``) for one
    prompt."""
    ranges, subj = map_tokens(prompt, subject, offsets, words, n_frames, run_lengths, rate_hz, template)
    return pd.DataFrame({
        "known_id": np.full(len(tokens), int(known_id), dtype=np.int64),
        "model": [model] * len(tokens),
        "text_token_index": np.arange(len(tokens), dtype=np.int64),
        "text_token": list(tokens),
        "token_text": [token_text(t) for t in tokens],
        "speech_start": np.array([r[0] for r in ranges], dtype=np.int64),
        "speech_end": np.array([r[1] for r in ranges], dtype=np.int64),
        "is_subject": np.array(subj, dtype=bool),
        "char_start": np.array([o[0] for o in offsets], dtype=np.int64),
        "char_end": np.array([o[1] for o in offsets], dtype=np.int64),
    })


def subject_speech_range(map_df: pd.DataFrame) -> tuple[int, int]:
    """[start, end) of the speech tokens covering the subject's text tokens (one fact's map)."""
    subj = map_df[map_df["is_subject"].astype(bool) & (map_df["speech_end"] > map_df["speech_start"])]
    if subj.empty:
        raise TokenMapError("no subject token with a non-empty speech range")
    return int(subj["speech_start"].min()), int(subj["speech_end"].max())


def widen(start: int, end: int, n_units: int, margin: int) -> tuple[int, int]:
    """A subject's speech range ``[start, end)`` widened by ``margin`` speech tokens on each side, within the
    ``n_units`` speech tokens of the prompt (`tracing.subject_margin_s2t`: the subject's sound spills past the
    aligned boundaries at 25 Hz, README "The offline speech LM")."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    return max(0, start - margin), min(n_units, end + margin)
