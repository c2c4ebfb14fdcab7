"""The model families causal tracing supports, one module each, and the modules of one loaded model.

Each family module (``llama.py``: Llama, Qwen2, Mistral, Qwen3; ``gpt2.py``; ``gpt_neox.py``) holds a
:class:`Family` record, the names of the modules that the reference path hooks, and the family's
:class:`EngineSteps`, the steps of the fast engine that differ between families. To add a family, add a module
like them and list its ``FAMILY`` in :data:`FAMILIES`. :class:`Layout` resolves a loaded model's modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from factrace.models.families import gpt2, gpt_neox, llama
from factrace.models.families.base import EngineSteps, Family, MLPStep, UnsupportedModelError, get_module

FAMILIES: tuple[Family, ...] = (llama.FAMILY, gpt2.FAMILY, gpt_neox.FAMILY)


def family_of(model: nn.Module) -> Family:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    supported = sorted(t for f in FAMILIES for t in f.model_types)
    raise UnsupportedModelError(
        f"model_type {model_type!r} is not supported for tracing; supported: {', '.join(supported)}. "
        "Add a family module in factrace/models/families/ naming its modules and engine steps."
    )


class _Part:
    """A module of the model named by a :class:`Family` field, resolved on each access."""

    def __init__(self, field: str, in_backbone: bool = True):
        self.field, self.in_backbone = field, in_backbone

    def __get__(self, layout: Layout | None, owner: type | None = None):
        if layout is None:  # looked up on the class
            return self
        root = layout.backbone if self.in_backbone else layout.model
        return get_module(root, getattr(layout.family, self.field))


@dataclass(frozen=True)
class Layout:
    """Resolved modules of one loaded model: ``backbone``, ``embed``, ``blocks``, ``final_norm``, ``lm_head``."""

    model: nn.Module
    family: Family

    backbone = _Part("backbone", in_backbone=False)
    embed = _Part("embed")
    blocks = _Part("layers")  # an nn.ModuleList
    final_norm = _Part("final_norm")
    lm_head = _Part("lm_head", in_backbone=False)

    @classmethod
    def of(cls, model: nn.Module) -> Layout:
        return cls(model, family_of(model))

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    def module(self, kind: str, layer: int) -> nn.Module:
        """The module whose output is restored for ``kind`` at ``layer``: the block, its MLP or its attention."""
        if kind not in ("hidden", "mlp", "attn"):  # the kinds of factrace.tracing.method.KINDS
            raise ValueError(f"unknown kind {kind!r}; expected one of ('hidden', 'mlp', 'attn')")
        block = self.blocks[layer]
        return block if kind == "hidden" else get_module(block, getattr(self.family, kind))

    def engine_steps(self) -> EngineSteps:
        """The family's steps of the fast engine for this model."""
        return self.family.steps(self)


__all__ = ["FAMILIES", "EngineSteps", "Family", "Layout", "MLPStep", "UnsupportedModelError", "family_of"]
