"""How the fast engine batches its restorations: how many cells fit in one batch (a memory bound) and the
order of the batches. Pure arithmetic on sizes; the engine (``factrace.tracing.engine``) runs the batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

Cell = TypeVar("Cell")


@dataclass(frozen=True)
class RowDims:
    """Sizes that set the working memory of one batch row."""

    d: int  # hidden size
    kv: int  # width of the keys (= values) of one position: kv heads x head dim
    elem: int  # bytes per activation element (the model's dtype)
    n_heads: int
    inter: int  # MLP intermediate size
    vocab: int

    @classmethod
    def of(cls, config, d: int, kv: int, elem: int) -> RowDims:
        """The sizes of a transformers ``config`` (llama/qwen2/mistral/qwen3, gpt2, gpt_neox names)."""
        inter = int(getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d)
        n_heads = int(getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1))
        vocab = int(getattr(config, "vocab_size", 0) or 0)
        return cls(d, kv, elem, n_heads, inter, vocab)


def cells_per_batch(n_cells: int, samples: int, seg: int, n_tokens: int, dims: RowDims, max_rows: int,
                    max_bytes: int | None) -> int:
    """How many cells of segment length ``seg`` fit in one batch.

    Working memory of one batch row, per layer: activations of its ``seg`` positions (hidden copies, MLP
    intermediates, attention scores over ``n_tokens`` keys) plus keys/values over all ``n_tokens`` positions
    and the last position's logits. The bound is what ``max_rows`` rows of the full prompt need in the
    reference (``seg = n_tokens``, logits at every position), and ``max_bytes`` if given.
    """
    elem, d, inter, n_heads, kv, vocab = dims.elem, dims.d, dims.inter, dims.n_heads, dims.kv, dims.vocab

    def row_bytes(m: int, logits_positions: int) -> int:
        return elem * (m * (8 * d + 3 * inter + n_heads * n_tokens) + 4 * n_tokens * kv) + 4 * vocab * logits_positions

    budget = max(1, max_rows) * row_bytes(n_tokens, n_tokens)
    if max_bytes is not None:
        budget = min(budget, max_bytes)
    per = budget // (samples * row_bytes(seg, 1))
    return int(max(1, min(per, n_cells)))


def batch_plan(cells: Sequence[Cell], first: int, n_tokens: int, samples: int, dims: RowDims, max_rows: int,
               max_bytes: int | None) -> list[tuple[int, Sequence[Cell]]]:
    """The batches, in order: for each position t from ``first`` on, ``cells`` (in their order) in chunks of
    :func:`cells_per_batch` cells of segment length ``n_tokens - t``."""
    plan: list[tuple[int, Sequence[Cell]]] = []
    for t in range(first, n_tokens) if cells else ():
        per = cells_per_batch(len(cells), samples, n_tokens - t, n_tokens, dims, max_rows, max_bytes)
        plan += [(t, cells[i : i + per]) for i in range(0, len(cells), per)]
    return plan
