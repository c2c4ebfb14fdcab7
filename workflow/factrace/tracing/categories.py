"""Token categories of Meng et al. (2022), by position relative to the subject, and the prediction position.

:data:`CATEGORIES` are ROME's six categories of prompt tokens. :data:`AIE_CATEGORIES` adds
:data:`PREDICTION`, the position whose next-token distribution is read. For a text prompt it is the last
token (the two categories hold the same cells); for a speech prompt it is the ``[Text]`` marker after the
speech tokens, and ``last token`` is the speech tokens of the prompt's last word (the paper's mapping: speech
tokens are aggregated by the text token they realise), so the two are reported separately.

The rule is written once (``_membership``) and serves one position (:func:`categories_of`,
:func:`primary_category`, the trace table's labels) and arrays of them (:func:`category_masks`,
:func:`primary_categories`, the AIE table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

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


#: The precedence of :func:`primary_category`: the most specific category a position carries wins.
PRIMARY_ORDER = ("last token", "last subject", "first subject", "middle subject", "first subsequent",
                 "further tokens")


def _membership(p, s, e, n) -> dict:
    """The rule, for ints or numpy integer arrays alike: category -> whether ``p`` is in it.

    ``s``/``e``: subject start and (exclusive) end; ``n``: the number of tokens. Positions before the subject
    and positions past the prompt (``p >= n``) are in no category.
    """
    last = n - 1
    inside = p < n
    return {
        "first subject": (p == s) & inside,
        "middle subject": (s < p) & (p < e - 1) & inside,
        "last subject": (p == e - 1) & inside,
        "first subsequent": (p == e) & inside,
        "further tokens": (e < p) & (p < last),
        "last token": (p == last) & (p >= e),
    }


def categories_of(position: int, subject_start: int, subject_end: int, n_tokens: int) -> list[str]:
    """All categories a position belongs to (a one-token subject is both first and last subject token).

    ``subject_end`` is exclusive. Positions before the subject belong to no AIE category.
    """
    member = _membership(position, subject_start, subject_end, n_tokens)
    return [c for c in CATEGORIES if member[c]]


def primary_category(position: int, subject_start: int, subject_end: int, n_tokens: int) -> str:
    """One label per position for the long table: the most specific category (:data:`PRIMARY_ORDER`: "last
    token" and "last subject" win over the broader labels the same position may carry), or ``before subject``."""
    member = _membership(position, subject_start, subject_end, n_tokens)
    return next((c for c in PRIMARY_ORDER if member[c]), PREFIX)


def category_masks(position: ArrayLike, start: ArrayLike, end: ArrayLike, n_tokens: ArrayLike,
                   prediction: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Vectorised :func:`categories_of`, plus ``prediction``: one boolean mask per AIE category.

    ``prediction`` flags the prediction position; by default (text) the last position ``n_tokens - 1``. A row
    at ``position >= n_tokens`` (the collapsed ``[Text]`` marker of a speech prompt) is in no ROME category.
    """
    p, s, e, n = (np.asarray(a, dtype=np.int64) for a in (position, start, end, n_tokens))
    masks = _membership(p, s, e, n)
    masks[PREDICTION] = (p == n - 1) if prediction is None else np.asarray(prediction, dtype=bool)
    return masks


def primary_categories(position: ArrayLike, start: ArrayLike, end: ArrayLike, n_tokens: ArrayLike,
                       prediction: ArrayLike | None = None) -> np.ndarray:
    """Vectorised :func:`primary_category` (same precedence); a prediction position that is in no ROME
    category (the speech ``[Text]`` marker) is labelled ``prediction``."""
    masks = category_masks(np.asarray(position), np.asarray(start), np.asarray(end), np.asarray(n_tokens),
                           None if prediction is None else np.asarray(prediction))
    order = [*PRIMARY_ORDER, PREDICTION]
    return np.select([masks[c] for c in order], order, default=PREFIX).astype(object)
