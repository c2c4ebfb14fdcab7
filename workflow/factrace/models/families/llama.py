"""Llama and the families that share its decoder layer: Qwen2, Mistral and Qwen3 (SmolLM2 is a Llama; SpiritLM
is a Llama-2 with extra tokens).

Pre-norm blocks: ``mid = x + self_attn(input_layernorm(x))``, ``out = mid + mlp(post_attention_layernorm(mid))``,
rotary positions. Mistral, and any layer that ``config.layer_types`` marks ``sliding_attention``, attends
within ``config.sliding_window`` positions.
"""

from __future__ import annotations

import torch

from factrace.models.families.base import EngineSteps, Family, MLPStep, cache_kwarg


class LlamaSteps(EngineSteps):
    def sliding_window(self, layer: int) -> int | None:
        window = super().sliding_window(layer)
        if window is None:
            cfg = self.config
            types = getattr(cfg, "layer_types", None)
            if getattr(cfg, "model_type", "") == "mistral" or (types and types[layer] == "sliding_attention"):
                window = getattr(cfg, "sliding_window", None)
        return window

    def attention(self, j: int, x: torch.Tensor, cache, mask: torch.Tensor, pe) -> torch.Tensor:
        blk = self.blocks[j]
        h = blk.input_layernorm(x)
        return blk.self_attn(hidden_states=h, position_embeddings=pe, attention_mask=mask,
                             **{cache_kwarg(blk.self_attn): cache})[0]

    def tail(self, j: int, x: torch.Tensor, a: torch.Tensor, mlp: MLPStep) -> torch.Tensor:
        blk = self.blocks[j]
        mid = x + a
        return mid + mlp(blk.mlp, blk.post_attention_layernorm, mid)


FAMILY = Family("llama", ("llama", "qwen2", "mistral", "qwen3"), backbone="model", embed="embed_tokens",
                layers="layers", mlp="mlp", attn="self_attn", final_norm="norm", lm_head="lm_head",
                steps=LlamaSteps)
