"""Prompt layout of SpiritLM-style speech-text LMs, built as token ids.

SpiritLM (``spiritlm/model/spiritlm_model.py``, ``Spiritlm._build_prompt`` and ``generate``) builds a prompt
*string* and tokenises it with its ``LlamaTokenizer(add_bos_token=True, add_eos_token=False)``:

* text -> text: ``"[Text]" + prompt``             -> ``<s> [Text] t1 .. tn``
* speech -> text: ``"[Speech]" + "[Hu12][Hu7]..." + "[Text]"`` (deduplicated HuBERT units, and the output
  modality marker ``[Text]`` appended because the wanted output is text) -> ``<s> [Speech] [Hu12] [Hu7] .. [Text]``

Ids in SpiritLM's checkpoints: ``[Text]`` = 32000, ``[Speech]`` = 32001, ``[Hu0]``.. = 32002.. (its
``get_forbidden_tokens`` bans 32000-32001 and the 501 ids from 32002 when generating text; the expressive model
adds ``[Pi0..63]`` = 32503.. and ``[St0..99]`` = 32567..).

Here the ids are assembled directly (no string round trip), which gives the same ids as SpiritLM's string
tokenisation (tests check it on a tiny tokenizer with SpiritLM's ids) and keeps the character offsets of the
text part for locating the subject. The marker ids are read from the tokenizer **by token string**
(:func:`markers_from_tokenizer`), so the same code serves SpiritLM and the offline speech LM built by
:mod:`factrace.models.offline_speechlm.build`. BOS is prepended when the model's tokenizer prepends it to plain text
(SpiritLM's does); everything after BOS is the same for every model.

Expressive SpiritLM interleaves ``[Pi..]``/``[St..]`` tokens with the units; the workflow's speech-token tables
hold HuBERT units only, so speech prompts here carry ``[Hu..]`` tokens only (for the expressive model this is
a documented deviation from its training distribution).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEXT_MARKER = "[Text]"
SPEECH_MARKER = "[Speech]"
UNIT_FMT = "[Hu{}]"
_EXTRA = re.compile(r"^\[(Pi|St)\d+\]$")


class NotASpeechLMError(ValueError):
    """The tokenizer has no ``[Text]``/``[Speech]``/``[Hu0]`` tokens."""


@dataclass(frozen=True)
class Markers:
    """Special ids of a speech-text LM, read from its tokenizer by token string."""

    text: int
    speech: int
    units: tuple[int, ...]  # id of [Hu{u}] for u = 0..n_units-1
    bos: int | None = None  # prepended to every prompt when not None
    eos: int | None = None
    extra: tuple[int, ...] = ()  # expressive [Pi..] / [St..] tokens

    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def n_prefix_text(self) -> int:
        """Tokens before the first text token of a text prompt (BOS?, [Text])."""
        return (self.bos is not None) + 1

    @property
    def n_prefix_speech(self) -> int:
        """Tokens before the first unit of a speech prompt (BOS?, [Speech])."""
        return (self.bos is not None) + 1

    def unit_id(self, u: int) -> int:
        if not 0 <= int(u) < self.n_units:
            raise ValueError(f"speech unit {u} outside the model's {self.n_units} units [Hu0..Hu{self.n_units - 1}]")
        return self.units[int(u)]

    def non_text(self) -> list[int]:
        """Ids a text continuation must not contain (SpiritLM bans them when the output modality is text)."""
        return sorted({self.text, self.speech, *self.units, *self.extra})


def is_speech_lm(tokenizer: Any) -> bool:
    vocab = tokenizer.get_vocab()
    return TEXT_MARKER in vocab and SPEECH_MARKER in vocab and UNIT_FMT.format(0) in vocab


def adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` (default special tokens) starts with its BOS token."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    with_sp = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return len(with_sp) > len(without) and with_sp[0] == bos


def markers_from_tokenizer(tokenizer: Any, add_bos: bool | None = None) -> Markers:
    """The marker and unit ids of ``tokenizer`` (``[Hu0]``, ``[Hu1]``, ... as long as they exist).

    ``add_bos`` None: prepend BOS exactly when the tokenizer does so for plain text.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in (TEXT_MARKER, SPEECH_MARKER, UNIT_FMT.format(0)) if t not in vocab]
    if missing:
        raise NotASpeechLMError(
            f"tokenizer has no {', '.join(missing)} token(s): not a SpiritLM-style speech-text model. Use loader "
            "'spiritlm' only for SpiritLM checkpoints or the offline speech LM built by `factrace build-speechlm`"
        )
    units = []
    while UNIT_FMT.format(len(units)) in vocab:
        units.append(int(vocab[UNIT_FMT.format(len(units))]))
    extra = tuple(sorted(int(i) for t, i in vocab.items() if _EXTRA.match(t)))
    if add_bos is None:
        add_bos = adds_bos(tokenizer)
    bos = tokenizer.bos_token_id if add_bos else None
    return Markers(
        text=int(vocab[TEXT_MARKER]), speech=int(vocab[SPEECH_MARKER]), units=tuple(units),
        bos=None if bos is None else int(bos), eos=getattr(tokenizer, "eos_token_id", None), extra=extra,
    )


@dataclass(frozen=True)
class TextPrompt:
    ids: list[int]
    offsets: list[tuple[int, int]]  # character span in ``prompt`` per id; (0, 0) for BOS / [Text]
    n_prefix: int


def text_prompt_ids(tokenizer: Any, prompt: str, markers: Markers) -> TextPrompt:
    """``[BOS] [Text] t1 .. tn``: SpiritLM's text prompt, with the text tokens' character offsets."""
    enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    prefix = ([markers.bos] if markers.bos is not None else []) + [markers.text]
    ids = prefix + [int(i) for i in enc["input_ids"]]
    offsets = [(0, 0)] * len(prefix) + [tuple(map(int, o)) for o in enc["offset_mapping"]]
    return TextPrompt(ids, offsets, len(prefix))


def speech_prompt_ids(units: Sequence[int], markers: Markers, output_text: bool = True) -> list[int]:
    """``[BOS] [Speech] [Hu..] .. [Text]``: SpiritLM's speech prompt for text output.

    ``units`` are the (deduplicated) unit indices; ``output_text`` appends ``[Text]`` as SpiritLM does when the
    output modality is text.
    """
    if len(units) == 0:
        raise ValueError("no speech units")
    ids = ([markers.bos] if markers.bos is not None else []) + [markers.speech]
    ids += [markers.unit_id(u) for u in units]
    if output_text:
        ids.append(markers.text)
    return ids


def spiritlm_prompt_string(units: Sequence[int]) -> str:
    """The string SpiritLM tokenises for a speech->text prompt (used by tests to compare the id layouts)."""
    return SPEECH_MARKER + "".join(UNIT_FMT.format(int(u)) for u in units) + TEXT_MARKER
