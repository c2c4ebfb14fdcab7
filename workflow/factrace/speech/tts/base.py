"""What the TTS backends and their callers share: the result (:class:`SynthResult`), the error
(:class:`TTSError`) and the words of a text (:func:`text_words`, :func:`is_spoken`). Imports no backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class TTSError(RuntimeError):
    """Synthesis failed or its backend is unavailable; the message says what to do."""


@dataclass
class SynthResult:
    path: Path
    sample_rate: int
    duration_s: float
    word_onsets: list[tuple[str, float]] | None
    # (word, end_s) per entry of word_onsets: next word's onset, or for the last word the end of audio less
    # trailing silence
    word_ends: list[tuple[str, float]] | None = None
    # index into text_words(text) of each entry of word_onsets
    word_indices: list[int] | None = None
    backend: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def text_words(text: str) -> list[str]:
    """The word numbering shared by TTS onsets and every aligner: whitespace tokens of the text."""
    return text.split()


def is_spoken(word: str) -> bool:
    """Whether a text word is spoken at all (it has a letter or digit; an em dash is not)."""
    return any(ch.isalnum() for ch in word)
