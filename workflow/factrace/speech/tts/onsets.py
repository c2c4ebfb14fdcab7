"""Word onsets and ends of synthesised speech, from eSpeak NG's WORD events (pure numpy, no eSpeak needed).

Onsets/ends are returned per *spoken text word* (:func:`factrace.speech.tts.base.text_words`, the numbering every
aligner uses). Pure punctuation (an em dash) gets no entry. eSpeak joins some unstressed words to the previous
one ("in the", "at a") and emits a single WORD event for both: :func:`word_timing` splits the joined span by
phoneme count and flags the later words ``interpolated``. A word ends at the next word's onset, or where its
sound ends when a pause (>= 50 ms, :func:`trim_trailing_silence`) follows it; the last word ends where the
speech ends (:func:`trailing_speech_end`).
"""

from __future__ import annotations

import numpy as np

from factrace.speech.tts.base import is_spoken, text_words


def _char_offsets(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets (0-based, end exclusive) of each whitespace token."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append((i, j))
        i = j
    return out


def events_to_words(text: str, events: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Map eSpeak WORD events to text words: (word_index, first sample) for every word that has an event.

    eSpeak reports ``text_position`` as a 1-based character position; one text word may give several events
    (e.g. "1889" is spoken as four words) and the earliest one is its onset.
    """
    spans = _char_offsets(text)
    first: dict[int, int] = {}
    for pos, _length, sample in events:
        c = pos - 1
        for k, (a, b) in enumerate(spans):
            if a <= c < b:
                first[k] = min(sample, first.get(k, sample))
                break
    ordered = sorted(first.items())
    # onsets must be non-decreasing in text order (they are for eSpeak; enforce for safety)
    out, last = [], 0
    for k, s in ordered:
        last = max(last, s)
        out.append((k, last))
    return out


def trailing_speech_end(wave: np.ndarray, sr: int, frame_s: float = 0.01, rel_db: float = -40.0) -> float:
    """Time (s) where speech ends: the end of the last 10 ms frame within ``rel_db`` of the loudest frame."""
    hop = max(1, round(frame_s * sr))
    n = len(wave) // hop
    if n == 0:
        return len(wave) / sr
    frames = wave[: n * hop].astype(np.float64).reshape(n, hop)
    rms = np.sqrt(np.mean(frames**2, axis=1)) + 1e-12
    thr = rms.max() * 10 ** (rel_db / 20)
    loud = np.nonzero(rms >= thr)[0]
    return float((loud[-1] + 1) * hop / sr) if len(loud) else len(wave) / sr


def word_timing(
    text: str, events: list[tuple[int, int, int]], native_sr: int, speech_end_s: float,
    n_phones: dict[int, int] | None = None,
) -> list[tuple[int, str, float, float, bool]]:
    """(word_index, word, start_s, end_s, interpolated) for every spoken text word.

    eSpeak joins some unstressed words to the previous one ("in the", "at a") and emits one WORD event for
    the pair. The joined span (from the event to the next event) is then split between the words in
    proportion to their phoneme counts (``n_phones``) and the later words are flagged ``interpolated``.
    A word's end is the next spoken word's onset; the last word ends at ``speech_end_s``.
    """
    words = text_words(text)
    mapped = dict(events_to_words(text, events))
    n_phones = n_phones or {}
    spoken = [k for k, w in enumerate(words) if is_spoken(w) or k in mapped]
    starts: dict[int, tuple[float, bool]] = {k: (s / native_sr, False) for k, s in mapped.items()}
    # group each evented word with the following spoken words that have no event
    groups: list[list[int]] = []
    for k in spoken:
        if k in mapped or not groups:
            groups.append([k])
        else:
            groups[-1].append(k)
    for gi, grp in enumerate(groups):
        if len(grp) == 1 or grp[0] not in mapped:
            continue
        t0 = starts[grp[0]][0]
        nxt = groups[gi + 1][0] if gi + 1 < len(groups) else None
        t1 = starts[nxt][0] if nxt is not None and nxt in starts else max(speech_end_s, t0)
        weights = [float(n_phones.get(k, 1)) for k in grp]
        total = sum(weights)
        acc = t0
        for k, wgt in zip(grp, weights):
            if k != grp[0]:
                starts[k] = (acc, True)
            acc += (t1 - t0) * wgt / total
    order = [k for k in spoken if k in starts]
    out = []
    for i, k in enumerate(order):
        t0, interp = starts[k]
        t1 = starts[order[i + 1]][0] if i + 1 < len(order) else max(speech_end_s, t0)
        out.append((k, words[k], t0, t1, interp))
    return out


def trim_trailing_silence(
    wave: np.ndarray, sr: int, start_s: float, end_s: float, min_gap_s: float = 0.05, rel_db: float = -40.0,
) -> float:
    """Move ``end_s`` back over a pause (>= ``min_gap_s`` of frames ``rel_db`` below the loudest frame).

    Used for word ends: a word's end is the next word's onset unless a pause separates them (a comma, a
    dash), in which case the word ends where its sound ends.
    """
    hop = max(1, round(0.01 * sr))
    a, b = int(start_s * sr) // hop, int(end_s * sr) // hop
    n = len(wave) // hop
    if n == 0 or b <= a:
        return end_s
    rms_all = np.sqrt(np.mean(wave[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1))
    thr = rms_all.max() * 10 ** (rel_db / 20)
    seg = rms_all[a:min(b, n)]
    loud = np.nonzero(seg >= thr)[0]
    if not len(loud):
        return end_s
    last = (a + loud[-1] + 1) * hop / sr
    return last if end_s - last >= min_gap_s else end_s
