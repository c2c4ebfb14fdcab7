"""Where a fact's subject is in its prompt: at the template's ``{}`` placeholder, in whole tokens.

One rule for every path that corrupts the subject (text tracing, the speech token map, the noise scale, the
modality gap): the subject is the characters that the template's ``{}`` stands for, so "Romeo lived far from
Rome" with template "Romeo lived far from {}" puts the subject at the end, not inside "Romeo", and "Rome's mayor
said {} is in" puts it at the second "Rome". ROME (Meng et al. 2022, ``find_token_range``) takes the first
occurrence of the subject's text instead. Without a template, the subject must occur once as a whole word.

The token range covers every token whose characters (leading whitespace excluded) overlap the subject's
characters; a token that also holds characters outside the subject (the template glues text to ``{}``) is
included whole, as ROME does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

PLACEHOLDER = "{}"


class SubjectNotFoundError(ValueError):
    """The subject is not where the template says it is (or not in the prompt at all)."""


def _whole_word_starts(text: str, subject: str) -> list[int]:
    starts, i = [], text.find(subject)
    while i >= 0:
        before = text[i - 1] if i > 0 else " "
        after = text[i + len(subject)] if i + len(subject) < len(text) else " "
        if not (before.isalnum() and subject[0].isalnum()) and not (after.isalnum() and subject[-1].isalnum()):
            starts.append(i)
        i = text.find(subject, i + 1)
    return starts


def subject_char_span(prompt: str, subject: str, template: str | None = None) -> tuple[int, int]:
    """Character span ``[start, end)`` of ``subject`` in ``prompt``, at the template's ``{}``.

    Raises :class:`SubjectNotFoundError`, naming the prompt, template and subject, when the prompt is not the
    template with the subject in place of ``{}``. Without a template the subject must occur exactly once as a
    whole word (not inside another word).
    """
    if not subject:
        raise SubjectNotFoundError(f"empty subject for prompt {prompt!r}")
    if template:
        if template.count(PLACEHOLDER) != 1:
            raise SubjectNotFoundError(
                f"template {template!r} must have exactly one '{{}}' placeholder for the subject {subject!r}"
            )
        prefix, suffix = template.split(PLACEHOLDER)
        if prompt != prefix + subject + suffix:
            raise SubjectNotFoundError(
                f"the subject {subject!r} is not at the template's placeholder: prompt {prompt!r} is not template "
                f"{template!r} with {{}} = {subject!r} (expected {prefix + subject + suffix!r}); fix the fact's "
                "prompt, subject or template"
            )
        return len(prefix), len(prefix) + len(subject)
    starts = _whole_word_starts(prompt, subject)
    if not starts:
        raise SubjectNotFoundError(f"subject {subject!r} not found as a whole word in {prompt!r}")
    if len(starts) > 1:
        raise SubjectNotFoundError(
            f"subject {subject!r} occurs {len(starts)} times in {prompt!r}; give the fact's template (with '{{}}' "
            "where the subject is) to say which"
        )
    return starts[0], starts[0] + len(subject)


def subject_token_range(
    offsets: Sequence[tuple[int, int]], text: str, subject: str, template: str | None = None,
) -> tuple[int, int]:
    """Token range ``[start, end)`` of the subject placed by ``template`` in ``text``, from character offsets.

    Robust to SentencePiece and byte-level BPE: a token belongs to the subject when its characters, leading
    whitespace excluded, overlap the subject's span. Special tokens (empty spans) never do.
    """
    cs, ce = subject_char_span(text, subject, template)
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
        raise SubjectNotFoundError(f"no token of {text!r} overlaps the subject {subject!r} at [{cs}, {ce})")
    start, end = hits[0], hits[-1] + 1
    # a whitespace-only token inside the subject ("iPhone", " ", "1", "2" in byte-level BPE) belongs to it
    gaps = [i for i in range(start, end) if i not in hits and text[offsets[i][0]:offsets[i][1]].strip()]
    if gaps:
        raise SubjectNotFoundError(f"the tokens of subject {subject!r} in {text!r} are not contiguous: {hits}")
    first_s = offsets[start][0]
    while first_s < offsets[start][1] and text[first_s].isspace():
        first_s += 1
    if first_s < cs or offsets[end - 1][1] > ce:
        log.debug("subject %r in %r: a token extends past the subject's characters; it is included whole",
                  subject, text)
    return start, end
