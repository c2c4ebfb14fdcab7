"""Where each supported architecture keeps its embeddings, blocks, MLPs and attention modules.

Causal tracing patches module outputs by hook; this table is the only family-specific knowledge it needs.
Llama covers SmolLM2 and SpiritLM (a Llama-2 with extra tokens); Qwen2 and Mistral share its layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..tracing.method import KINDS


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    backbone: str  # attribute of the *ForCausalLM holding the transformer
    embed: str  # token embedding, relative to the backbone
    layers: str  # ModuleList of blocks, relative to the backbone
    mlp: str  # attribute of a block
    attn: str  # attribute of a block
    final_norm: str  # relative to the backbone
    lm_head: str  # relative to the *ForCausalLM


FAMILIES: tuple[Family, ...] = (
    Family("llama", ("llama", "qwen2", "mistral", "qwen3"), "model", "embed_tokens", "layers", "mlp",
           "self_attn", "norm", "lm_head"),
    Family("gpt2", ("gpt2",), "transformer", "wte", "h", "mlp", "attn", "ln_f", "lm_head"),
    Family("gpt_neox", ("gpt_neox",), "gpt_neox", "embed_in", "layers", "mlp", "attention", "final_layer_norm",
           "lm_head"),
)


class UnsupportedModelError(ValueError):
    pass


def family_of(model: nn.Module) -> Family:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    supported = sorted(t for f in FAMILIES for t in f.model_types)
    raise UnsupportedModelError(
        f"model_type {model_type!r} is not supported for tracing; supported: {', '.join(supported)}. "
        "Add a Family entry in factrace/models/families.py naming its modules."
    )


def _get(obj: nn.Module, dotted: str) -> nn.Module:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Layout:
    """Resolved modules of one loaded model."""

    model: nn.Module
    family: Family

    @classmethod
    def of(cls, model: nn.Module) -> Layout:
        return cls(model, family_of(model))

    @property
    def backbone(self) -> nn.Module:
        return _get(self.model, self.family.backbone)

    @property
    def embed(self) -> nn.Module:
        return _get(self.backbone, self.family.embed)

    @property
    def blocks(self) -> nn.ModuleList:
        return _get(self.backbone, self.family.layers)  # type: ignore[return-value]

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def final_norm(self) -> nn.Module:
        return _get(self.backbone, self.family.final_norm)

    @property
    def lm_head(self) -> nn.Module:
        return _get(self.model, self.family.lm_head)

    def module(self, kind: str, layer: int) -> nn.Module:
        """The module whose output is restored for ``kind`` at ``layer``: the block, its MLP or its attention."""
        block = self.blocks[layer]
        if kind == "hidden":
            return block
        if kind == "mlp":
            return _get(block, self.family.mlp)
        if kind == "attn":
            return _get(block, self.family.attn)
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
