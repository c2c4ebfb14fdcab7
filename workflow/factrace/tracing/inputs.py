"""What the tracer reads for one fact: token ids, the corrupted range and the text token of every position."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class SubjectNotFoundError(ValueError):
    pass


@dataclass(frozen=True)
class TraceInputs:
    known_id: int
    input_ids: torch.Tensor  # (1, n_tokens)
    corrupt: tuple[int, int]  # [start, end) positions whose input embeddings get noise
    text_token_index: list[int]  # per position: the text token it realises (identity for text)
    tokens: list[str]  # per position, for plots
    text_subject: tuple[int, int]  # subject range in text-token units
    n_text_tokens: int

    @property
    def n_tokens(self) -> int:
        return int(self.input_ids.shape[-1])


def subject_token_range(offsets: list[tuple[int, int]], text: str, subject: str) -> tuple[int, int]:
    """Token range [start, end) covering ``subject``'s first occurrence in ``text``, from character offsets.

    Robust to SentencePiece and byte-level BPE: a token belongs to the subject when its characters, leading
    whitespace excluded, overlap the subject's span. Special tokens (empty spans) never do.
    """
    cs = text.find(subject)
    if cs < 0:
        raise SubjectNotFoundError(f"subject {subject!r} does not occur in {text!r}")
    ce = cs + len(subject)
    hits = []
    for i, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        s_eff = s
        while s_eff < e and text[s_eff].isspace():
            s_eff += 1
        if s_eff < e and s_eff < ce and e > cs:
            hits.append(i)
    if not hits:
        raise SubjectNotFoundError(f"no token of {text!r} overlaps the subject {subject!r}")
    return hits[0], hits[-1] + 1


def text_inputs(tokenizer, known_id: int, prompt: str, subject: str) -> TraceInputs:
    """Text->text inputs: the prompt's tokens (with the tokenizer's special tokens), subject by offsets."""
    enc = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=True)
    ids = enc["input_ids"]
    start, end = subject_token_range([tuple(o) for o in enc["offset_mapping"]], prompt, subject)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    n = len(ids)
    return TraceInputs(
        known_id=known_id,
        input_ids=torch.tensor([ids]),
        corrupt=(start, end),
        text_token_index=list(range(n)),
        tokens=[str(t) for t in tokens],
        text_subject=(start, end),
        n_text_tokens=n,
    )
