"""Token categories of Meng et al. (2022), by position relative to the subject, and the prediction position.

:data:`CATEGORIES` are ROME's six categories of prompt tokens. :data:`AIE_CATEGORIES` adds
:data:`PREDICTION`, the position whose next-token distribution is read. For a text prompt it is the last
token (the two categories hold the same cells); for a speech prompt it is the ``[Text]`` marker after the
speech tokens, and ``last token`` is the speech tokens of the prompt's last word (the paper's mapping: speech
tokens are aggregated by the text token they realise), so the two are reported separately.
"""

from __future__ import annotations

CATEGORIES = (
    "first subject",
    "middle subject",
    "last subject",
    "first subsequent",
    "further tokens",
    "last token",
)
PREFIX = "before subject"
PREDICTION = "prediction"
AIE_CATEGORIES = (*CATEGORIES, PREDICTION)


def categories_of(position: int, subject_start: int, subject_end: int, n_tokens: int) -> list[str]:
    """All categories a position belongs to (a one-token subject is both first and last subject token).

    ``subject_end`` is exclusive. Positions before the subject belong to no AIE category.
    """
    out: list[str] = []
    last = n_tokens - 1
    if position == subject_start:
        out.append("first subject")
    if subject_start < position < subject_end - 1:
        out.append("middle subject")
    if position == subject_end - 1:
        out.append("last subject")
    if position == subject_end:
        out.append("first subsequent")
    if subject_end < position < last:
        out.append("further tokens")
    if position == last and position >= subject_end:
        out.append("last token")
    return out


def primary_category(position: int, subject_start: int, subject_end: int, n_tokens: int) -> str:
    """One label per position for the long table: the most specific category, or ``before subject``."""
    cats = categories_of(position, subject_start, subject_end, n_tokens)
    if not cats:
        return PREFIX
    # "last token" and "last subject" win over the broader labels that the same position may also carry
    for preferred in ("last token", "last subject", "first subject"):
        if preferred in cats:
            return preferred
    return cats[0]
