"""A pure cost model of tracing one prompt: cells, forward-token equivalents and FLOPs.

It counts the matrix multiplications each method performs (the rest, norms, activations, softmax, is
memory-bound and small next to them), and mirrors the code operation for operation so that it can be checked
against ``torch.utils.flop_counter`` (tests/test_cost.py):

* ``reference`` (``patching.trace_prompt``): a clean forward, a corrupted forward of ``samples`` rows, then for
  every cell (kind x centre layer x position) a full forward of ``samples`` rows; transformers computes the
  LM head at every position of every row.
* ``engine`` (``engine.trace_prompt_fast``): one recording forward of ``1 + samples`` rows (LM head at the
  last position only); for every cell at a position t >= the first corrupted token, ``samples`` rows of the
  ``n_tokens - t`` positions t.. run through the layers from the cell's join layer (``hidden`` at l: l+1;
  ``mlp``/``attn`` with window [a, b) (``method.window_bounds``): a+1), attending over all ``n_tokens`` keys,
  the last block's MLP at the last position only, plus the LM head at the last position; an ``attn`` cell also
  runs one token's MLP at layer a. This is the minimal recomputation that exact restoration needs (see the
  engine's docstring) and defines the benchmark's ``floor_s``.

Attention is counted over all ``n_tokens`` keys for every query (what an explicit-mask kernel computes),
which over-counts the causal minimum by a few per cent at these lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

from factrace.tracing.method import KINDS, centre_layers, check_kinds, window_bounds


def estimate_cost(
    n_layers: int,
    hidden: int,
    intermediate: int,
    vocab: int,
    n_tokens: int,
    corrupt_start: int,
    samples: int,
    window: int,
    kinds: Sequence[str] = KINDS,
    method: str = "engine",
    *,
    q_dim: int | None = None,
    kv_dim: int | None = None,
    mlp_matrices: int = 3,
    layers: Sequence[int] | None = None,
    corrupt_end: int | None = None,
) -> dict:
    """Cost of tracing one prompt of ``n_tokens`` tokens with ``method`` ("engine" or "reference").

    ``q_dim``/``kv_dim``: widths of the query and of the key (= value) projections (default ``hidden``; a
    grouped-query model such as SmolLM2 has a smaller ``kv_dim``). ``mlp_matrices``: 3 for gated MLPs
    (llama, qwen2), 2 for gpt2 / gpt_neox. ``layers``: centre layers traced (default all).
    ``corrupt_end`` equal to ``corrupt_start`` means no corruption (nothing to recompute).

    Returns ``cells`` (result cells), ``computed_cells`` (cells that need a forward), ``rows`` (sequences
    run), ``forward_token_equivalents`` (token x layer evaluations / ``n_layers``: one full forward of the
    prompt is ``n_tokens``), ``flops`` and, of them, ``attention_flops`` (the products of queries with keys and of
    scores with values; the rest are the linear layers' and the LM head's).
    """
    if method not in ("engine", "reference"):
        raise ValueError(f"method must be 'engine' or 'reference', not {method!r}")
    check_kinds(kinds)
    L, d, n, S = n_layers, hidden, n_tokens, samples
    q = d if q_dim is None else q_dim
    kv = d if kv_dim is None else kv_dim
    layer_list = centre_layers(L, layers)
    linear = 2 * d * (q + 2 * kv) + 2 * q * d + mlp_matrices * 2 * d * intermediate  # per token per layer
    mlp_token = mlp_matrices * 2 * d * intermediate
    attn_per_query = 4 * n * q  # QK^T and PV over n keys
    per_token_layer = linear + attn_per_query
    head = 2 * d * vocab
    cells = len(kinds) * len(layer_list) * n

    if method == "reference":
        computed = cells
        rows = (1 + S) + computed * S
        token_layers = rows * n * L
        flops = token_layers * per_token_layer + rows * n * head
        return {"cells": cells, "computed_cells": computed, "rows": rows,
                "forward_token_equivalents": token_layers / L, "flops": float(flops),
                "attention_flops": float(token_layers * attn_per_query)}

    first = corrupt_start if (corrupt_end is None or corrupt_end > corrupt_start) else n
    token_layers = (1 + S) * n * L  # the recording pass
    extra = (1 + S) * head  # its LM head, last position only
    computed = 0
    for t in range(first, n):
        m = n - t
        for k in kinds:
            for lay in layer_list:
                a, _b = window_bounds(lay, L, k, window)
                join = a + 1
                computed += 1
                token_layers += S * m * (L - join)
                if join < L:  # the last block runs its MLP at the last position only
                    extra -= S * (m - 1) * mlp_token
                extra += S * head
                if k == "attn":
                    extra += S * mlp_token
    flops = token_layers * per_token_layer + extra
    return {"cells": cells, "computed_cells": computed, "rows": (1 + S) + computed * S,
            "forward_token_equivalents": token_layers / L, "flops": float(flops),
            "attention_flops": float(token_layers * attn_per_query)}


def model_dims(config) -> dict:
    """``estimate_cost`` keyword arguments read off a transformers config (llama/qwen2/gpt2/gpt_neox)."""
    mt = getattr(config, "model_type", "")
    d = int(getattr(config, "hidden_size", None) or config.n_embd)
    heads = int(getattr(config, "num_attention_heads", None) or config.n_head)
    hd = int(getattr(config, "head_dim", None) or d // heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    inter = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * d
    return {
        "n_layers": int(getattr(config, "num_hidden_layers", None) or config.n_layer),
        "hidden": d,
        "intermediate": int(inter),
        "vocab": int(config.vocab_size),
        "q_dim": heads * hd,
        "kv_dim": kv_heads * hd,
        "mlp_matrices": 2 if mt in ("gpt2", "gpt_neox") else 3,
    }
