"""GPT-2: learned absolute positions added to the token embeddings (then dropout), no rotary.

Pre-norm blocks: ``mid = x + attn(ln_1(x))``, ``out = mid + mlp(ln_2(mid))``.
"""

from __future__ import annotations

import torch

from factrace.models.families.base import EngineSteps, Family, MLPStep, cache_kwarg


class GPT2Steps(EngineSteps):
    def embed(self, h: torch.Tensor) -> torch.Tensor:
        bb = self.layout.backbone
        pos = torch.arange(h.shape[1], device=h.device)[None]
        h = h + bb.wpe(pos).to(h.device)
        return bb.drop(h)

    def position_embeddings(self, h: torch.Tensor) -> None:
        return None

    def attention(self, j: int, x: torch.Tensor, cache, mask: torch.Tensor, pe) -> torch.Tensor:
        blk = self.blocks[j]
        return blk.attn(blk.ln_1(x), attention_mask=mask, **{cache_kwarg(blk.attn): cache})[0]

    def tail(self, j: int, x: torch.Tensor, a: torch.Tensor, mlp: MLPStep) -> torch.Tensor:
        blk = self.blocks[j]
        mid = x + a
        return mid + mlp(blk.mlp, blk.ln_2, mid)


FAMILY = Family("gpt2", ("gpt2",), backbone="transformer", embed="wte", layers="h", mlp="mlp", attn="attn",
                final_norm="ln_f", lm_head="lm_head", steps=GPT2Steps)
