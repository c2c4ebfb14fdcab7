"""Token categories of Meng et al. (2022), by position relative to the subject, and the prediction position.

:data:`CATEGORIES` are ROME's six categories of prompt tokens. :data:`AIE_CATEGORIES` adds
:data:`PREDICTION`, the position whose next-token distribution is read. For a text prompt it is the last
token (the two categories hold the same cells); for a speech prompt it is the ``[Text]`` marker after the
speech tokens, and ``last token`` is the speech tokens of the prompt's last word (the paper's mapping: speech
tokens are aggregated by the text token they realise), so the two are reported separately.

One vocabulary for every table. The AIE table counts a position in every category it belongs to (a text
prompt's last token is both ``last token`` and ``prediction``; the AIE table marks such twins in
``same_cells_as``). The trace table gives each position one label (:func:`trace_categories`):

- ``prediction``: the prediction position (``position == n_tokens - 1``) in **both** modalities: the ``[Text]``
  marker in S->T, the last token in T->T. So ``trace.groupby("category")`` gives, at each layer, the same cells
  as the AIE table's ``prediction`` row, and no trace row is ``last token`` in T->T (the AIE table's
  ``last token`` row of a text trace holds the same cells as its ``prediction`` row: ``same_cells_as``).
- ``unmapped`` (:data:`UNMAPPED`): a speech position that realises no text token: ``<s>``, ``[Speech]`` and
  silences between or around words. The AIE table leaves these out (they are in no category).
- ``before subject`` (:data:`PREFIX`): a position before the subject; in no AIE category either.
- otherwise the most specific ROME category of the position's text token (:data:`PRIMARY_ORDER`); a speech
  token takes the category of the word (text token) it realises.

The AIE analysis never reads the trace table's ``category`` column: it recomputes the categories from the
positions and subject ranges (``subject_start``, ``subject_end``, ``n_tokens`` and their ``text_`` twins), so
these labels are for readers of the trace table.

The rule is written once (``_membership``) and serves one position (:func:`categories_of`,
:func:`primary_category`), arrays of them (:func:`category_masks`, :func:`primary_categories`, the AIE table)
and the trace table's labels (:func:`trace_categories`).
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
#: a speech position that realises no text token (``<s>``, ``[Speech]``, silence): in no AIE category
UNMAPPED = "unmapped"
#: every label a trace table's ``category`` column can hold
TRACE_CATEGORIES = (PREFIX, *CATEGORIES, PREDICTION, UNMAPPED)

#: one line per category, for the contracts' descriptions and ``factrace describe``
CATEGORY_MEANINGS = {
    PREFIX: "a token before the subject (in no AIE category)",
    "first subject": "the subject's first token",
    "middle subject": "a subject token between its first and last",
    "last subject": "the subject's last token",
    "first subsequent": "the first token after the subject",
    "further tokens": "a token after the first subsequent one and before the last token",
    "last token": "the prompt's last token (speech: the speech tokens of the prompt's last word)",
    PREDICTION: "the position whose next-token distribution is read: the last token in T->T, the [Text] marker "
                "after the speech tokens in S->T",
    UNMAPPED: "a speech position that realises no text token (<s>, [Speech], silence); in no AIE category",
}


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


def trace_categories(position: ArrayLike, text_token_index: ArrayLike, text_subject_start: int,
                     text_subject_end: int, n_text_tokens: int, n_tokens: int) -> np.ndarray:
    """The trace table's ``category`` of each position (see the module docstring): ``prediction`` at the
    prediction position ``n_tokens - 1`` (both modalities), ``unmapped`` where ``text_token_index < 0``, else
    the primary category (:func:`primary_category`) of the position's text token, in text-token units."""
    p = np.asarray(position, dtype=np.int64)
    tti = np.asarray(text_token_index, dtype=np.int64)
    n = np.full_like(tti, int(n_text_tokens))
    cats = primary_categories(tti, np.full_like(tti, int(text_subject_start)),
                              np.full_like(tti, int(text_subject_end)), n, np.zeros(tti.shape, dtype=bool))
    cats = np.where(tti < 0, UNMAPPED, cats)
    return np.where(p == int(n_tokens) - 1, PREDICTION, cats).astype(object)
