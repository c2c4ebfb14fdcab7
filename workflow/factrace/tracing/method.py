"""The causal-tracing method of Meng et al. (2022) in one page: what is corrupted, restored and scored.

ROME's ``trace_with_patch``, for one prompt and its target token:

1. **Clean run**: the prompt as it is.
2. **Corrupted run**: Gaussian noise (:func:`make_noise`, ``scale`` = multiplier x the std of the subjects'
   input embeddings, :func:`noise_scale_for`) is added to the input embeddings of the subject's tokens
   (:func:`add_noise`), once per noise sample.
3. **Restored runs**: for each cell (kind, centre layer, position), the corrupted run with the clean output of
   the cell's module(s) written back at that position (:func:`restore`): ``hidden`` restores one block output,
   ``mlp``/``attn`` the sublayer over a window of layers around the centre layer (:func:`window_layers`), the
   window per model (:func:`resolve_window`).

The **score** is the probability of the target at the last position (:func:`target_probability`, softmax in
float32), averaged over the noise samples; :class:`TraceResult` holds p_clean, p_corrupted and p_restored per
cell, and a cell's indirect effect is ``p_restored - p_corrupted`` (:func:`indirect_effect`).

Two implementations compute it: ``patching`` (hooks, one forward per cell: the reference) and ``engine`` (the
same numbers with far less work); ``cost`` counts their operations. Importing this module imports neither torch
nor numpy (the functions that need them import them), so the cost model stays cheap.
"""

from __future__ import annotations

import hashlib
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

#: What a cell restores: the block output, the MLP output or the attention output.
KINDS = ("hidden", "mlp", "attn")


# -- the arguments ------------------------------------------------------------------------------------------
def check_kinds(kinds: Sequence[str]) -> None:
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}; expected one of {KINDS}")


def check_noise(corrupt: tuple[int, int], noise_tokens: int) -> None:
    """The noise must cover exactly the corrupted range ``[start, end)``."""
    start, end = corrupt
    if noise_tokens != end - start:
        raise ValueError(f"noise covers {noise_tokens} tokens but the corrupted range has {end - start}")


def centre_layers(n_layers: int, layers: Sequence[int] | None) -> list[int]:
    """The centre layers traced: ``layers`` (a layer window of a split job), by default every layer. A layer
    outside the model, or one given twice, is an error (both tracing paths call this)."""
    if layers is None:
        return list(range(n_layers))
    out = [operator.index(x) for x in layers]  # an int, never a truncated float
    bad = sorted({x for x in out if not 0 <= x < n_layers})
    if bad:
        raise ValueError(f"layers {bad} are outside the model's layers 0..{n_layers - 1}")
    if len(set(out)) != len(out):
        raise ValueError(f"layers {out} name a layer twice")
    return out


# -- the window rule ----------------------------------------------------------------------------------------
def effective_window(kind: str, window: int) -> int:
    """The window a kind's cells use: ``window`` for ``mlp``/``attn``; ``hidden`` restores one layer (1)."""
    return 1 if kind == "hidden" else window


def window_bounds(layer: int, n_layers: int, kind: str, window: int) -> tuple[int, int]:
    """``[a, b)``: the layers a cell restores. One (``layer``) for ``hidden`` or ``window <= 1``; else
    ``window`` layers centred on ``layer`` (``layer - window//2`` to ``layer + ceil(window/2)``), clipped to
    the model, as ROME's ``trace_important_window``."""
    if effective_window(kind, window) <= 1:
        return layer, layer + 1
    return max(0, layer - window // 2), min(n_layers, layer - (-window // 2))


def window_layers(layer: int, n_layers: int, kind: str, window: int) -> range:
    """The layers a cell restores (:func:`window_bounds`) as a range."""
    return range(*window_bounds(layer, n_layers, kind, window))


def resolve_window(n_layers: int, window: int, max_fraction: float, override: int | None = None) -> int:
    """A model's ``mlp``/``attn`` window: ``override`` (``models.<name>.window``) when given, else ``min(window,
    max(1, floor(n_layers * max_fraction)))`` (``tracing.window``, ``tracing.window_max_fraction``).

    ROME restores 10 layers around the centre layer of its 28- to 48-layer models; on a model with few layers a
    window of 10 restores every layer from every centre and the MLP and attention panels come out flat. With
    ``max_fraction`` 0.34: 30 or 32 layers -> 10 (ROME, the paper), 12 -> 4, 8 -> 2, 4 -> 1."""
    if n_layers < 1:
        raise ValueError(f"a model has at least 1 layer, got n_layers={n_layers}")
    if override is not None:
        if override < 1:
            raise ValueError(f"a window restores at least 1 layer, got {override}")
        return int(override)
    if window < 1:
        raise ValueError(f"tracing.window must be >= 1, got {window}")
    if not 0 < max_fraction <= 1:
        raise ValueError(f"tracing.window_max_fraction must be in (0, 1], got {max_fraction}")
    # rounded first, so that a product such as 50 x 0.34 = 17.000000000000004 floors to 17 whatever its last bits
    return min(int(window), max(1, math.floor(round(n_layers * max_fraction, 9))))


def model_window(config: Mapping[str, Any], model: str) -> int:
    """:func:`resolve_window` of ``model`` under ``config`` (validated, the schema's defaults filled): the window
    of its trace jobs (``workflow/rules/common.smk``), of the cost model and of the figures' titles."""
    m, tr = config["models"][model], config["tracing"]
    return resolve_window(int(m["n_layers"]), int(tr["window"]), float(tr["window_max_fraction"]), m.get("window"))


def window_caption(window: int, n_layers: int) -> str:
    """How figures state a window: ``window W of L layers``."""
    return f"window {window} of {n_layers} layers"


# -- the noise ----------------------------------------------------------------------------------------------
def noise_seed(seed: int, known_id: int, modality: str = "t2t") -> int:
    """A per-fact seed derived from the config seed, stable across runs, shards and machines."""
    blob = f"{seed}:{known_id}:{modality}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def make_noise(samples: int, n_tokens: int, hidden: int, scale: float, seed: int) -> torch.Tensor:
    """``scale`` x standard normal noise of shape (samples, n_tokens, hidden), float32, drawn on the CPU.

    Drawn with numpy's PCG64 so that the same seed gives the same noise on every device and torch version.
    """
    import numpy as np
    import torch

    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal((samples, n_tokens, hidden), dtype=np.float32)
    return torch.from_numpy(z) * float(scale)


def embedding_std(vectors: torch.Tensor) -> float:
    """Standard deviation over all values of the subject-token embeddings (ROME's ``collect_embedding_std``)."""
    return float(vectors.float().std().item())


def noise_scale_for(std: float, multiplier: float) -> float:
    """The noise scale: ``multiplier`` (``tracing.noise_multiplier``, ROME: 3) x the embeddings' std."""
    return multiplier * std


def add_noise(h: torch.Tensor, start: int, noise: torch.Tensor, rows: torch.Tensor | slice = slice(None)
              ) -> torch.Tensor:
    """A copy of the input embeddings ``h`` (batch, tokens, d) with ``noise[k]`` added to tokens
    ``start..start+noise.shape[-2]`` of batch row ``rows[k]`` (every row by default). The sum is formed in
    float32 and rounded once to ``h``'s dtype (a bf16 model's noised embeddings are the float32 ones, rounded)."""
    import torch

    end = start + noise.shape[-2]
    h = h.clone()
    noised = h[rows, start:end].float() + noise.to(device=h.device, dtype=torch.float32)
    h[rows, start:end] = noised.to(h.dtype)
    return h


# -- the restoration ----------------------------------------------------------------------------------------
def restore(out: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor | int, clean: torch.Tensor
            ) -> torch.Tensor:
    """Write the clean output ``clean`` into a module's output ``out`` at (``rows[k]``, ``positions[k]``)."""
    out[rows, positions] = clean.to(out.dtype)
    return out


# -- the score ----------------------------------------------------------------------------------------------
def target_probability(logits: torch.Tensor, target_id: int) -> torch.Tensor:
    """P(target) from next-token logits (..., vocab): the softmax's entry in float32, exp(logit - logsumexp)
    (the full softmax is never formed)."""
    import torch

    x = logits.float()
    return torch.exp(x[..., target_id] - _logsumexp_rows(x))


LSE_CHUNK_ELEMENTS = 1 << 19  # 2 MB of float32 logits: a chunk that stays in a CPU core's cache


def _logsumexp_rows(x: torch.Tensor) -> torch.Tensor:
    """``logsumexp(x, -1)``; on the CPU a few rows at a time (about 2 MB), the same numbers ~2.5x faster for a
    large vocabulary than one call over all rows, whose temporaries (x - max, its exp) leave the cache."""
    import torch

    flat = x.reshape(-1, x.shape[-1])
    rows = max(1, LSE_CHUNK_ELEMENTS // max(1, x.shape[-1]))
    if x.device.type != "cpu" or flat.shape[0] <= rows:
        return torch.logsumexp(x, dim=-1)
    out = torch.empty(flat.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, flat.shape[0], rows):
        torch.logsumexp(flat[i:i + rows], dim=-1, out=out[i:i + rows])
    return out.reshape(x.shape[:-1])


def indirect_effect(p_restored, p_corrupted):
    """A cell's indirect effect: how much restoring it raises P(target) over the corrupted run."""
    return p_restored - p_corrupted


@dataclass
class TraceResult:
    """Probabilities of the target for one prompt, each the mean over the noise samples.

    ``restored[kind]`` has shape (len(layers[kind]), n_tokens): row i is centre layer ``layers[kind][i]``.
    """

    p_clean: float
    p_corrupted: float
    restored: dict[str, np.ndarray] = field(default_factory=dict)
    layers: dict[str, list[int]] = field(default_factory=dict)


__all__ = [
    "KINDS", "TraceResult", "add_noise", "centre_layers", "check_kinds", "check_noise",
    "effective_window", "embedding_std", "indirect_effect", "make_noise", "model_window", "noise_scale_for",
    "noise_seed", "resolve_window", "restore", "target_probability", "window_bounds", "window_caption",
    "window_layers",
]
