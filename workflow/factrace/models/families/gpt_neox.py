"""GPT-NeoX (Pythia): rotary positions (possibly on part of each head), dropouts around both sublayers, and a
parallel residual (``x + attn(ln1(x)) + mlp(ln2(x))``) or, with ``use_parallel_residual=False``, a
sequential one (``mid = x + attn(ln1(x))``, ``mid + mlp(ln2(mid))``).
"""

from __future__ import annotations

import torch

from factrace.models.families.base import EngineSteps, Family, MLPStep, cache_kwarg


class GPTNeoXSteps(EngineSteps):
    def __init__(self, layout):
        super().__init__(layout)
        self.parallel = bool(getattr(self.config, "use_parallel_residual", False))

    def embed(self, h: torch.Tensor) -> torch.Tensor:
        return self.layout.backbone.emb_dropout(h)

    def attention(self, j: int, x: torch.Tensor, cache, mask: torch.Tensor, pe) -> torch.Tensor:
        blk = self.blocks[j]
        return blk.attention(blk.input_layernorm(x), attention_mask=mask, position_embeddings=pe,
                             **{cache_kwarg(blk.attention): cache})[0]

    def tail(self, j: int, x: torch.Tensor, a: torch.Tensor, mlp: MLPStep) -> torch.Tensor:
        blk = self.blocks[j]
        a = blk.post_attention_dropout(a)
        if self.parallel:
            return blk.post_mlp_dropout(mlp(blk.mlp, blk.post_attention_layernorm, x)) + a + x
        mid = a + x
        return blk.post_mlp_dropout(mlp(blk.mlp, blk.post_attention_layernorm, mid)) + mid


FAMILY = Family("gpt_neox", ("gpt_neox",), backbone="gpt_neox", embed="embed_in", layers="layers", mlp="mlp",
                attn="attention", final_norm="final_layer_norm", lm_head="lm_head", steps=GPTNeoXSteps)
