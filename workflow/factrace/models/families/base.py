"""What a model family is: the names of its modules (:class:`Family`) and the steps of the fast tracing engine
that differ between families (:class:`EngineSteps`).

A family module (``llama.py``, ``gpt2.py``, ``gpt_neox.py``) holds one :data:`FAMILY` record and its
``EngineSteps`` subclass; ``factrace.models.families`` lists them and resolves a loaded model's modules
(``Layout``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from factrace.models.families import Layout

#: How a family's :meth:`EngineSteps.tail` asks the engine for a block's MLP output: ``mlp(module, norm, h)``
#: is ``module(norm(h))`` with the restoration written in where due, or the output the engine already has
#: (then nothing is computed). The engine also records it.
MLPStep = Callable[[nn.Module, nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Family:
    """The modules causal tracing reads and restores, by attribute path, and the family's engine steps."""

    name: str
    model_types: tuple[str, ...]  # config.model_type values of this family
    backbone: str  # attribute of the *ForCausalLM holding the transformer
    embed: str  # token embedding, relative to the backbone
    layers: str  # ModuleList of blocks, relative to the backbone
    mlp: str  # attribute of a block
    attn: str  # attribute of a block
    final_norm: str  # relative to the backbone
    lm_head: str  # relative to the *ForCausalLM
    steps: type[EngineSteps]  # the family-specific steps of the fast engine


#: The names transformers has given the key/value-cache argument, newest first: ``cache`` (5.x, where
#: ``past_key_values`` is deprecated, with a FutureWarning on every call), ``past_key_values`` (4.5x),
#: ``past_key_value`` (older attention modules), ``layer_past`` (GPT-NeoX attention).
CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


@functools.cache
def _cache_kwarg(cls: type) -> str:
    params = inspect.signature(cls.forward).parameters  # follows functools.wraps (deprecate_kwarg) to the original
    return next((name for name in CACHE_KWARGS if name in params), "past_key_values")


def cache_kwarg(module: nn.Module) -> str:
    """The name under which ``module.forward`` (an attention module or a ``*ForCausalLM``) takes the key/value
    cache in the installed transformers: the newest of :data:`CACHE_KWARGS` that its signature has."""
    return _cache_kwarg(type(module))


def output_cache(output):
    """The key/value cache a transformers model returned (``output.cache`` in 5.x, where reading
    ``output.past_key_values`` logs a deprecation warning; ``output.past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else getattr(output, "past_key_values", None)


class UnsupportedModelError(ValueError):
    pass


def get_module(obj: nn.Module, dotted: str) -> nn.Module:
    """``obj.a.b`` for ``dotted`` = ``"a.b"``."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class EngineSteps:
    """The family-specific steps of the fast engine (``factrace.tracing.engine``), like nnsight's adapters: each
    calls the model's own modules, op for op as the family's transformers decoder layer does, so that the
    arithmetic inside each module is the model's. A family overrides what differs from these defaults
    (rotary positions, a window only where the attention module has one); ``attention`` and ``tail`` are
    always its own.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.blocks = layout.blocks
        self.config = layout.model.config

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        """What the backbone does between the token embeddings ``h`` (batch, n, d), noise added, and block 0."""
        return h

    def position_embeddings(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """What every block gets for positions 0..n-1 of ``h``: rotary (cos, sin) from the backbone."""
        pos = torch.arange(h.shape[1], device=h.device)[None]
        return self.layout.backbone.rotary_emb(h, position_ids=pos)

    def sliding_window(self, layer: int) -> int | None:
        """The attention window of ``layer`` (keys within ``window`` positions of the query), None: causal."""
        return getattr(self.layout.module("attn", layer), "sliding_window", None)

    def layer_specific_mask(self, layer: int) -> bool:
        """Whether the attention mask may differ between layers (then it is built per layer)."""
        cfg = self.config
        return bool(getattr(self.layout.module("attn", layer), "sliding_window", None)
                    or getattr(cfg, "layer_types", None) or getattr(cfg, "sliding_window", None))

    def attention(self, j: int, x: torch.Tensor, cache, mask: torch.Tensor, pe) -> torch.Tensor:
        """The attention output of block ``j`` (before the residual) for block input ``x``; ``cache`` is the
        engine's stand-in for a transformers ``Cache``, ``mask`` an additive mask, ``pe`` the position
        embeddings."""
        raise NotImplementedError

    def tail(self, j: int, x: torch.Tensor, a: torch.Tensor, mlp: MLPStep) -> torch.Tensor:
        """The rest of block ``j`` given its input ``x`` and attention output ``a``: residuals and the MLP,
        whose output comes from ``mlp`` (:data:`MLPStep`)."""
        raise NotImplementedError
