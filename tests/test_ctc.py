"""CTC text normalisation and forced alignment (paper, Appendix A)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factrace.speech.align import ctc
from factrace.speech.align.normalise import CTC_ALPHABET, normalise, transcript
from hypothesis import given, settings
from hypothesis import strategies as st

# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The capital of Roman Republic is", "THE|CAPITAL|OF|ROMAN|REPUBLIC|IS"),
        ("0", "ZERO"),
        ("born in 1990", "BORN|IN|NINETEEN|NINETY"),
        ("in 1905 and 1900", "IN|NINETEEN|OH|FIVE|AND|NINETEEN|HUNDRED"),
        ("in 2005", "IN|TWO|THOUSAND|FIVE"),
        ("1,234 people", "ONE|THOUSAND|TWO|HUNDRED|THIRTY|FOUR|PEOPLE"),
        ("3.14", "THREE|POINT|ONE|FOUR"),
        ("the 21st century", "THE|TWENTY|FIRST|CENTURY"),
        ("the 1990s", "THE|NINETEEN|NINETIES"),
        ("50% of", "FIFTY|PERCENT|OF"),
        ("AT&T", "AT|AND|T"),
        ("$5 and $1", "FIVE|DOLLARS|AND|ONE|DOLLAR"),
        ("$5.50", "FIVE|DOLLARS|FIFTY|CENTS"),
        ("agent 007", "AGENT|ZERO|ZERO|SEVEN"),
        ("Rome's O'Brien", "ROME'S|O'BRIEN"),
        ("Rome’s", "ROME'S"),
        ("7-Eleven", "SEVEN|ELEVEN"),
        ("Zürich", "ZURICH"),
        ("São Paulo", "SAO|PAULO"),
        ("Gdańsk Straße Ørsted Æsop", "GDANSK|STRASSE|ORSTED|AESOP"),
        ("Hello, world!", "HELLO|WORLD"),
    ],
)
def test_normalise_transcripts(text, expected):
    assert transcript(text) == expected


def test_spans_map_back_to_original():
    text = "In 1990, Zürich's 7-Eleven had 50%."
    norm = normalise(text)
    pairs = [(w.text, text[w.char_start:w.char_end]) for w in norm.words]
    assert pairs == [
        ("IN", "In"), ("NINETEEN", "1990"), ("NINETY", "1990"), ("ZURICH'S", "Zürich's"), ("SEVEN", "7"),
        ("ELEVEN", "Eleven"), ("HAD", "had"), ("FIFTY", "50"), ("PERCENT", "%"),
    ]
    # both spoken words of "1990" share its written index; the span query finds them
    assert norm.words[1].written_index == norm.words[2].written_index
    assert norm.words_in_span(3, 7) == [1, 2]


def test_non_latin_word_is_dropped_and_reported():
    norm = normalise("Москва is")
    assert norm.transcript == "IS"
    assert norm.dropped == ((0, 6),)


@given(st.text(max_size=40))
@settings(max_examples=150, deadline=None)
def test_normalise_total_and_in_alphabet(text):
    norm = normalise(text)
    for w in norm.words:
        assert w.text and set(w.text) <= CTC_ALPHABET
        assert 0 <= w.char_start < w.char_end <= len(text)
    starts = [w.char_start for w in norm.words]
    assert starts == sorted(starts)


# ---------------------------------------------------------------- alignment on synthetic emissions

VOCAB_LABELS = ["<pad>", "|"] + list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
VOCAB = {c: i for i, c in enumerate(VOCAB_LABELS)}
BLANK = 0


def synth(text: str, label_frames: list[int], blank_frames: list[int], lead: int, p: float = 0.9):
    """Emissions where character i is emitted for label_frames[i] frames, then blank for blank_frames[i]."""
    rows, onsets = [], []
    rows += [BLANK] * lead
    for ch, nl, nb in zip(text, label_frames, blank_frames, strict=True):
        onsets.append(len(rows))
        rows += [VOCAB[ch]] * nl + [BLANK] * nb
    t, c = len(rows), len(VOCAB_LABELS)
    em = np.full((t, c), (1 - p) / (c - 1))
    em[np.arange(t), rows] = p
    return np.log(em), onsets, t


def expected_segments(text, onsets, t):
    ends = onsets[1:] + [t]
    return [(ch, s, e) for ch, s, e in zip(text, onsets, ends, strict=True)]


def test_known_segmentation_recovered_exactly():
    text = "THE|CAT"
    em, onsets, t = synth(text, [2, 1, 3, 1, 1, 2, 2], [1, 0, 2, 0, 0, 1, 3], lead=4)
    words, chars, path, k = ctc.align(em, text, VOCAB, BLANK)
    assert [(c.label, c.start, c.end) for c in chars] == expected_segments(text, onsets, t)
    assert [(w.label, w.start, w.end) for w in words] == [("THE", 4, 13), ("CAT", 14, t)]
    assert k.shape == (t, 2 * len(text) + 1)
    assert ctc.label_trellis(k).shape == (t, len(text) + 1)
    assert all(0 < c.score <= 1 for c in chars) and all(0 < w.score <= 1 for w in words)
    assert [p.frame for p in path] == list(range(4, t))  # leading silence belongs to no label


def test_repeated_letters_with_blank_between():
    text = "LL"
    em, _, _ = synth(text, [2, 2], [1, 1], lead=1)
    _, chars, _, _ = ctc.align(em, text, VOCAB, BLANK)
    assert [(c.start, c.end) for c in chars] == [(1, 4), (4, 7)]


def test_frames_to_seconds_eq1():
    # ratio = M / T samples per frame; s = floor(ratio * f) / sr
    assert ctc.frames_to_seconds(10, 320.0, 16000) == 0.2
    assert ctc.frames_to_seconds(3, 16000 / 49, 16000) == math.floor(3 * 16000 / 49) / 16000
    assert ctc.frames_to_seconds(0, 333.3, 16000) == 0.0


def test_alignment_errors():
    em, _, _ = synth("AB", [1, 1], [0, 0], lead=0)
    with pytest.raises(ctc.AlignmentError, match="cannot fit"):
        ctc.align(em, "ABC", VOCAB, BLANK)
    with pytest.raises(ctc.AlignmentError, match="outside the CTC vocabulary"):
        ctc.align(em, "A1", VOCAB, BLANK)
    with pytest.raises(ctc.AlignmentError, match="empty"):
        ctc.align(em, "", VOCAB, BLANK)


words_st = st.lists(st.text(alphabet="ABCDE'", min_size=1, max_size=5), min_size=1, max_size=4)


@given(data=st.data(), words=words_st)
@settings(max_examples=80, deadline=None)
def test_property_random_segmentations(data, words):
    text = "|".join(words)
    n = len(text)
    label_frames = data.draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    blank_frames = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    # CTC needs a blank between two identical consecutive labels
    for i in range(n - 1):
        if text[i] == text[i + 1] and blank_frames[i] == 0:
            blank_frames[i] = 1
    lead = data.draw(st.integers(0, 3))
    em, onsets, t = synth(text, label_frames, blank_frames, lead)
    word_segs, chars, _, _ = ctc.align(em, text, VOCAB, BLANK)
    assert [(c.label, c.start, c.end) for c in chars] == expected_segments(text, onsets, t)
    assert [w.label for w in word_segs] == words
    bounds = [(w.start, w.end) for w in word_segs]
    assert all(s < e for s, e in bounds)
    assert all(bounds[i][1] <= bounds[i + 1][0] for i in range(len(bounds) - 1))


def test_identical_neighbours_need_a_blank_frame():
    em, _, _ = synth("LL", [1, 1], [0, 0], lead=0)  # 2 frames cannot hold L, blank, L
    with pytest.raises(ctc.AlignmentError, match="cannot fit"):
        ctc.align(em, "LL", VOCAB, BLANK)
