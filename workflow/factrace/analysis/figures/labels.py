"""Readable token labels for per-prompt trace plots: the decoded text of each token, words for speech tokens.

:func:`token_text` (the decoder of byte-level BPE and SentencePiece tokens) lives in :mod:`factrace.core.tokens`,
where the tables' ``token_text`` columns use it too; it is re-exported here.

For a speech prompt each position is a speech token (``[Hu12]``); :func:`position_labels` labels it with its
unit and the word (text token) whose speech range contains it, from the token map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from factrace.core.tokens import token_text

__all__ = ["plot_labels", "position_labels", "token_label", "token_text"]

_UNIT = re.compile(r"\[Hu\d+\]")


def token_label(token: str) -> str:
    """A plot label: the token's text without surrounding spaces (a space-only token shows as '␣')."""
    text = token_text(token)
    return text.strip() or ("␣" if text else "")


def position_labels(
    tokens: Sequence[str], text_token_index: Sequence[int] | None = None,
    text_tokens: Mapping[int, str] | None = None,
) -> list[str]:
    """Labels of a prompt's positions: the decoded token, and for speech positions (``text_tokens`` given: text
    token index -> token) the word realised there after the unit (``[Hu12] Paris``)."""
    labels = [token_label(t) for t in tokens]
    if text_token_index is None or not text_tokens:
        return labels
    out = []
    for tok, lab, tti in zip(tokens, labels, text_token_index, strict=True):
        word = token_label(text_tokens[int(tti)]) if int(tti) >= 0 and int(tti) in text_tokens else ""
        out.append(f"{lab} {word}" if word and _UNIT.fullmatch(tok) else lab)
    return out


def plot_labels(trace_df, tokens: Sequence[str], text_tokens: Mapping[int, str] | None = None) -> list[str]:
    """Labels of the positions 0..len(tokens)-1 of one fact's trace rows (``position``, ``text_token_index``)."""
    if text_tokens and len(trace_df) and {"position", "text_token_index"} <= set(trace_df.columns):
        per_pos = trace_df.drop_duplicates("position").set_index("position")["text_token_index"]
        tti = [int(per_pos.get(i, -1)) for i in range(len(tokens))]
        return position_labels(tokens, tti, text_tokens)
    return position_labels(tokens)
