"""Token text: the decoded text of one tokenizer token, for tables and figures alike.

Tokenizers store tokens in their own alphabets: byte-level BPE (GPT-2, Llama 3, SmolLM2) maps every byte to a
printable character (``Ġ`` = space, ``Ã£`` = the two UTF-8 bytes of "ã"); SentencePiece writes a space as ``▁``
and unknown bytes as ``<0xE3>``. :func:`token_text` turns one token back into its text (``Ã£o`` -> ``ão``,
``ĠPaulo`` -> `` Paulo``). A token that holds only part of a character's UTF-8 bytes (byte-level BPE may split
"ã") shows the replacement character. Special tokens and SpiritLM's markers and units (``<s>``, ``[Text]``,
``[Hu12]``) are their own text. Pure string work: no tokenizer is loaded.
"""

from __future__ import annotations

import re
from functools import lru_cache

_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


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
