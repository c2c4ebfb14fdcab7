"""The subject is located at the template's ``{}``, in whole tokens, by one function for text and speech.

ROME (and factrace before this) took the first occurrence of the subject's characters anywhere in the prompt:
"Romeo lived far from Rome" corrupted the "Rome" piece of "Romeo", and "Rome's mayor said Rome is in" the first
"Rome". Tokens here are byte-level-BPE-like pieces with character offsets (leading spaces are part of a piece).
"""

from __future__ import annotations

import pytest
import torch
from factrace.facts.subject import SubjectNotFoundError, subject_char_span, subject_token_range
from factrace.speech.token_map import TokenMapError, map_tokens, token_map_rows
from factrace.speechlm.inputs import text_inputs


def pieces_offsets(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of consecutive pieces and each piece's [start, end) (HF offsets include a leading space)."""
    out, pos = [], 0
    for p in pieces:
        out.append((pos, pos + len(p)))
        pos += len(p)
    return "".join(pieces), out


class PieceTokenizer:
    """A fast-tokenizer stand-in: fixed pieces, a BOS with an empty span, offsets like HF's."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def __call__(self, text, return_offsets_mapping=False, add_special_tokens=True):
        joined, offs = pieces_offsets(self.pieces)
        assert joined == text
        ids = list(range(1, len(self.pieces) + 1))
        if add_special_tokens:
            ids, offs = [0, *ids], [(0, 0), *offs]
        return {"input_ids": ids, "offset_mapping": offs}

    def convert_ids_to_tokens(self, ids):
        return ["<s>" if i == 0 else self.pieces[i - 1].replace(" ", "Ġ") for i in ids]


ROMEO = ["Rome", "o", " lived", " far", " from", " Rome"]
MAYOR = ["Rome", "'s", " mayor", " said", " Rome", " is", " in"]
WORDS_ROMEO = [("Romeo", 0.0, 0.4), ("lived", 0.4, 0.7), ("far", 0.7, 0.9), ("from", 0.9, 1.1), ("Rome", 1.1, 1.5)]
WORDS_MAYOR = [("Rome's", 0.0, 0.4), ("mayor", 0.4, 0.7), ("said", 0.7, 0.9), ("Rome", 0.9, 1.2), ("is", 1.2, 1.4),
               ("in", 1.4, 1.6)]


@pytest.mark.parametrize(
    ("pieces", "template", "expected"),
    [
        (ROMEO, "Romeo lived far from {}", (5, 6)),  # not the "Rome" piece of "Romeo"
        (MAYOR, "Rome's mayor said {} is in", (4, 5)),  # not the first "Rome"
        (MAYOR, "{}'s mayor said Rome is in", (0, 1)),  # repeated subject, placeholder on the first one
    ],
)
def test_subject_token_range_follows_the_template(pieces, template, expected):
    text, offs = pieces_offsets(pieces)
    assert subject_token_range(offs, text, "Rome", template) == expected


def test_text_tracing_corrupts_the_subject_at_the_placeholder():
    text, _ = pieces_offsets(ROMEO)
    inp = text_inputs(PieceTokenizer(ROMEO), 0, text, "Rome", "Romeo lived far from {}")
    assert inp.corrupt == (6, 7)  # BOS shifts the pieces by one
    assert inp.tokens[inp.corrupt[0]] == "ĠRome"
    assert torch.equal(inp.input_ids, torch.tensor([[0, 1, 2, 3, 4, 5, 6]]))
    text, _ = pieces_offsets(MAYOR)
    inp = text_inputs(PieceTokenizer(MAYOR), 0, text, "Rome", "Rome's mayor said {} is in")
    assert inp.corrupt == (5, 6)


@pytest.mark.parametrize(
    ("pieces", "words", "template", "expected", "speech_start"),
    [
        (ROMEO, WORDS_ROMEO, "Romeo lived far from {}", [False] * 5 + [True], 27),  # 1.1 s x 25 Hz
        (MAYOR, WORDS_MAYOR, "Rome's mayor said {} is in", [False] * 4 + [True, False, False], 22),
        (MAYOR, WORDS_MAYOR, "{}'s mayor said Rome is in", [True] + [False] * 6, 0),
    ],
)
def test_speech_token_map_marks_the_same_subject_tokens(pieces, words, template, expected, speech_start):
    text, offs = pieces_offsets(pieces)
    ranges, subj = map_tokens(text, "Rome", offs, words, n_frames=45, template=template)
    assert subj == expected
    s, e = subject_token_range(offs, text, "Rome", template)
    assert subj == [s <= i < e for i in range(len(pieces))]  # one rule for text and speech
    df = token_map_rows(3, "m", text, "Rome", pieces, offs, words, n_frames=45, template=template)
    assert df["is_subject"].tolist() == expected
    # the corrupted speech tokens are those of the placeholder's word, not of the other "Rome"
    assert ranges[expected.index(True)][0] == speech_start


def test_subject_not_at_the_placeholder_is_a_clear_error():
    text, offs = pieces_offsets(ROMEO)
    with pytest.raises(SubjectNotFoundError, match="not at the template's placeholder"):
        subject_token_range(offs, text, "Rome", "Juliet lived far from {}")
    with pytest.raises(TokenMapError, match="not at the template's placeholder"):
        map_tokens(text, "Rome", offs, WORDS_ROMEO, n_frames=45, template="{} lived far from Rome")
    with pytest.raises(SubjectNotFoundError, match="exactly one"):
        subject_char_span(text, "Rome", "{} lived far from {}")


def test_without_a_template_the_subject_is_a_whole_word_once():
    text, offs = pieces_offsets(ROMEO)
    assert subject_token_range(offs, text, "Rome") == (5, 6)  # "Romeo" is not "Rome"
    text, offs = pieces_offsets(MAYOR)
    with pytest.raises(SubjectNotFoundError, match="occurs 2 times"):
        subject_token_range(offs, text, "Rome")
    with pytest.raises(SubjectNotFoundError, match="not found as a whole word"):
        subject_char_span("Romeo and Juliet", "Rome")


def test_non_ascii_subject_and_glued_suffix():
    pieces = ["The", " Zü", "rich", "'s", " lake", " is"]
    text, offs = pieces_offsets(pieces)
    assert subject_token_range(offs, text, "Zürich", "The {}'s lake is") == (1, 3)


def test_a_whitespace_token_inside_the_subject_belongs_to_it():
    """Byte-level BPE splits "The iPhone 12" as The / ĠiPhone / Ġ / 1 / 2: the lone space is inside the subject."""
    text = "The iPhone 12 is made by"
    offsets = [(0, 3), (3, 10), (10, 11), (11, 12), (12, 13), (13, 16), (16, 21), (21, 24)]
    assert subject_token_range(offsets, text, "iPhone 12", "The {} is made by") == (1, 5)
