"""What the tracer reads for one fact: token ids, the corrupted range and the text token of every position."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..facts.subject import SubjectNotFoundError, subject_token_range

__all__ = ["SubjectNotFoundError", "TraceInputs", "subject_token_range", "text_inputs"]


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


def text_inputs(tokenizer, known_id: int, prompt: str, subject: str, template: str | None = None) -> TraceInputs:
    """Text->text inputs: the prompt's tokens (with the tokenizer's special tokens), the subject's tokens at the
    template's ``{}`` (:func:`factrace.facts.subject.subject_token_range`)."""
    enc = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=True)
    ids = enc["input_ids"]
    start, end = subject_token_range([tuple(o) for o in enc["offset_mapping"]], prompt, subject, template)
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
