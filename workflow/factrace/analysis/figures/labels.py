"""Readable token labels for per-prompt trace plots: the decoded text of each token, words for speech tokens.

Tokenizers store tokens in their own alphabets: byte-level BPE (GPT-2, Llama 3, SmolLM2) maps every byte to a
printable character (``Ġ`` = space, ``Ã£`` = the two UTF-8 bytes of "ã"); SentencePiece writes a space as ``▁``
and unknown bytes as ``<0xE3>``. :func:`token_text` turns one token back into its text. A token that holds
only part of a character's UTF-8 bytes (byte-level BPE may split "ã") shows the replacement character.

For a speech prompt each position is a speech token (``[Hu12]``); :func:`position_labels` labels it with its
unit and the word (text token) whose speech range contains it, from the token map.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_UNIT = re.compile(r"\[Hu\d+\]")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's ``bytes_to_unicode`` (printable bytes map to themselves, others to U+0100..)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _is_byte_level(token: str) -> bool:
    dec = _byte_decoder()
    return all(ch in dec for ch in token) and any(ord(ch) >= 0x80 for ch in token)


def token_text(token: str) -> str:
    """The text of one token (byte-level BPE and SentencePiece decoded), spaces kept."""
    if token.startswith("<") and token.endswith(">") and not _SP_BYTE.fullmatch(token):
        return token  # special tokens: <s>, <|endoftext|>
    if token.startswith("[") and token.endswith("]"):
        return token  # SpiritLM markers and units: [Text], [Speech], [Hu12]
    if "▁" in token or _SP_BYTE.search(token):
        raw = _SP_BYTE.sub(lambda m: chr(int(m.group(1), 16)) if int(m.group(1), 16) < 0x80 else "\ufffd", token)
        return raw.replace("▁", " ")
    if _is_byte_level(token):
        raw = bytes(_byte_decoder()[ch] for ch in token)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if all(ord(ch) < 0x100 for ch in token):
                return token  # plain text that happens to use Latin-1 letters ("Zürich" in a word vocabulary)
            return raw.decode("utf-8", errors="replace")  # a byte-level token split inside a character
    return token


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
