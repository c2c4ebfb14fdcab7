"""Fast causal tracing: the same numbers as ``patching.trace_prompt`` with far less work.

The method (kinds, window, noise, score) is :mod:`factrace.tracing.method`'s; this module only computes it
faster.

``trace_prompt_fast`` has the signature and the result of the reference path (``factrace.tracing.patching``)
and agrees with it to float32 rounding (tests: max abs diff <= 1e-5). It runs the decoder blocks itself, for
every supported family (llama/qwen2/mistral/qwen3, gpt2, gpt_neox), calling the model's own norm, attention
and MLP modules, so the arithmetic inside each module is the model's. The exact savings:

1. **One pass for clean and corrupted runs.** Row 0 is clean, rows 1..S carry the noise samples. It records,
   per layer, the block input, the attention keys/values (post-rotary, as the attention module hands them to
   its cache), the attention output and (clean row) the MLP output.
2. **Positions before the corruption are no-ops.** Restoring (l, t) with t < corrupt start restores a value
   the corrupted run already has; the cell's value is the corrupted probability (no forward).
3. **Only what a restoration changes is recomputed.** Restoring at (layer l, position t) changes nothing at
   positions < t and nothing below the first restored layer. A cell is run from its *join* layer on, on the
   positions t..n-1 only, starting from the corrupted run's cached hidden state; the positions < t enter
   attention as the corrupted run's cached keys/values of the same noise sample (the corrupted cache is per
   sample). The join layer is the first layer whose *input* differs from the corrupted run:

   * ``hidden`` at l: the block output at t is the clean one, so rows join at l+1 with the cached corrupted
     block output, position t replaced by the clean output.
   * ``mlp`` with window [a, b): at layer a only the MLP output at t changes, and the attention of layer a is
     unchanged, so layer a's output at t is formed from cached values (input, corrupted attention output,
     clean MLP output; no matmul) and rows join at a+1; MLP outputs at t are restored in layers a+1..b-1.
   * ``attn`` with window [a, b): at layer a the keys/values are unchanged, so only position t changes: its
     output is formed from the cached input, the clean attention output and one-token MLP; rows join at
     a+1; attention outputs at t are restored in layers a+1..b-1.

   A cell restored at the last layer (join = n_layers) needs no block at all.
4. **Only the last position** goes through the last block's MLP, the final norm and the LM head (the
   last block's attention still reads every position; the reference computes logits at every position).
5. **Big batches.** For one position t, the cells of all kinds and layers (times the samples) form one batch,
   sorted by join layer, so that the rows active at layer j are a prefix of the batch; a row enters when the
   sweep reaches its join layer. Batches are chunked to a memory bound: the working memory of ``max_rows``
   rows of the full prompt in the reference (a short segment lets more rows into a batch) and optionally
   ``max_bytes`` (``batching.cells_per_batch``). Results do not depend on the chunking beyond float rounding.

Families: every supported family runs the manual-block engine above; there is no hook-based fallback. What
differs between families (what follows the token embeddings, position embeddings, sliding windows, the
attention call, the residual/MLP tail of a block) is the family's ``EngineSteps`` in
``factrace.models.families.<family>``; this module holds only what they share. Attention runs through the
model's own attention module (its ``_attn_implementation``: eager or sdpa) with an explicit additive mask
(causal, offset for the segment, honouring a sliding window where the layer has one) and a small stand-in
cache object whose ``update`` prepends the cached prefix. Flash-attention implementations, which ignore an
explicit mask, are rejected (load the model with ``attn_implementation="sdpa"`` or ``"eager"``).

Dtype/device: the model is used as loaded (``models.<name>.dtype``: float32 or bf16 on the CPU, bf16/fp16 on a
GPU); the blocks' activations follow the model's dtype and device. What the score depends on most is float32
whatever the model's dtype: the noise is added to the embeddings in float32 (``method.add_noise``), the final
norm and the LM head run on float32 copies, and P(target) is a float32 softmax entry; the restored
probabilities and the AIE are float32/float64 from there on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from factrace.models.families import Layout
from factrace.tracing.batching import RowDims, batch_plan
from factrace.tracing.method import (
    KINDS,
    TraceResult,
    add_noise,
    centre_layers,
    check_kinds,
    check_noise,
    restore,
    target_probability,
    window_layers,
)


class _PrefixCache:
    """Stands in for a transformers ``Cache`` for one attention call.

    ``update`` prepends the cached keys/values of the positions before the segment (if any) and, when asked,
    records the keys/values it was handed (for the recording pass).
    """

    def __init__(self, k: torch.Tensor | None = None, v: torch.Tensor | None = None, record: bool = False):
        # k, v: (S, heads, t, head_dim), one per noise sample; batch rows are (cell, sample), sample fastest
        self.k, self.v, self.record = k, v, record
        self.seen: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _prepend(prefix: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        S, H, t, hd = prefix.shape
        R, _, m, _ = new.shape
        out = new.new_empty((R, H, t + m, hd))
        out.view(R // S, S, H, t + m, hd)[:, :, :, :t] = prefix  # broadcast over cells: one copy
        out[:, :, t:] = new
        return out

    def update(self, key: torch.Tensor, value: torch.Tensor, layer_idx: int | None = None, *a, **kw):
        if self.record:
            self.seen = (key, value)
        if self.k is None or self.k.shape[2] == 0:
            return key, value
        return self._prepend(self.k, key), self._prepend(self.v, value)

    def get_seq_length(self, layer_idx: int = 0) -> int:  # pragma: no cover - not called by the attn modules
        return 0 if self.k is None else int(self.k.shape[2])


Patch = tuple[torch.Tensor, torch.Tensor] | None  # (row indices, value (d,)) written at segment index 0


def _apply(out: torch.Tensor, patch: Patch) -> torch.Tensor:
    if patch is not None and patch[0].numel():
        restore(out, patch[0], 0, patch[1])
    return out


class _Runner:
    """The engine's view of one model: the generic steps here, the family-specific ones from its family
    (``factrace.models.families``: embeddings, positions, sliding windows, attention call, block tail)."""

    def __init__(self, model: nn.Module):
        self.layout = Layout.of(model)
        self.steps = self.layout.engine_steps()
        self.n_layers = self.layout.n_layers
        impl = getattr(model.config, "_attn_implementation", "eager") or "eager"
        if impl not in ("eager", "sdpa"):
            raise ValueError(
                f"the fast engine needs attn_implementation 'eager' or 'sdpa' (explicit masks), got {impl!r}"
            )
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        # the model's own head first: the families name it for transformers 5 (GPT-NeoX's was ``embed_out``)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        # the score is read in float32 whatever the model's dtype: the final norm and the LM head of a bf16/fp16
        # model run on float32 copies (the model itself is never cast)
        self.final_norm = _in_float32(self.layout.final_norm)
        self.lm_head = _in_float32(head if head is not None else self.layout.lm_head)

    def embed(self, ids: torch.Tensor, rows_noise: torch.Tensor, start: int) -> torch.Tensor:
        """Input of block 0 for ``ids`` (B, n); ``rows_noise`` (B, end-start, d) is added to the token
        embeddings of tokens start..end (zeros for the clean row), as the reference's embedding hook does."""
        h = self.layout.embed(ids)
        if rows_noise.shape[1]:
            h = add_noise(h, start, rows_noise)
        return self.steps.embed(h)

    def mask(self, layer: int, t: int, n: int) -> torch.Tensor:
        """Additive mask (1, 1, n-t, n) for queries at positions t..n-1 over keys 0..n-1."""
        q = torch.arange(t, n, device=self.device)[:, None]
        k = torch.arange(n, device=self.device)[None]
        allowed = k <= q
        window = self.steps.sliding_window(layer)
        if window:
            allowed = allowed & (k > q - window)
        m = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        m.masked_fill_(~allowed, torch.finfo(self.dtype).min)
        return m[None, None]

    def tail(self, j: int, x: torch.Tensor, a: torch.Tensor, mlp_patch: Patch = None,
             f: torch.Tensor | None = None, rec: dict | None = None) -> torch.Tensor:
        """The rest of block j given its input ``x`` and attention output ``a`` (already restored where due).
        ``f`` given: use it as the MLP output instead of computing it."""

        def mlp(module: nn.Module, norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
            out = f if f is not None else _apply(module(norm(h)), mlp_patch)
            if rec is not None:
                rec["mlp"] = out
            return out

        return self.steps.tail(j, x, a, mlp)

    def block(self, j: int, x: torch.Tensor, cache: _PrefixCache, mask: torch.Tensor, pe,
              attn_patch: Patch = None, mlp_patch: Patch = None, rec: dict | None = None) -> torch.Tensor:
        a = _apply(self.steps.attention(j, x, cache, mask, pe), attn_patch)
        if rec is not None:
            rec["attn"] = a
        return self.tail(j, x, a, mlp_patch, rec=rec)

    def probs(self, last: torch.Tensor, target_id: int) -> torch.Tensor:
        """P(target) for final-layer hidden states ``last`` (B, d) at the last position, float32."""
        return target_probability(self.lm_head(self.final_norm(last.float())), target_id)


def _in_float32(module: nn.Module) -> nn.Module:
    """``module`` itself when its parameters are float32, else a float32 copy of it."""
    if all(p.dtype == torch.float32 for p in module.parameters()):
        return module
    import copy

    return copy.deepcopy(module).float()


@dataclass
class _Runs:
    """What the clean+corrupted pass leaves for the restorations (rows: 0 clean, 1..S corrupted)."""

    x: list[torch.Tensor]  # per layer 0..L: corrupted block inputs (S, n, d); x[L] = last block's output
    k: list[torch.Tensor]  # per layer: corrupted keys (S, heads, n, hd)
    v: list[torch.Tensor]
    attn: list[torch.Tensor]  # per layer: corrupted attention outputs (S, n, d) (only when mlp is traced)
    clean_x: list[torch.Tensor]  # per layer 0..L: clean block inputs (n, d)
    clean_attn: list[torch.Tensor]  # (n, d)
    clean_mlp: list[torch.Tensor]
    p_clean: float
    p_corrupted: float


def _record(run: _Runner, ids: torch.Tensor, noise: torch.Tensor, start: int, target_id: int,
            kinds: Sequence[str]) -> _Runs:
    S = noise.shape[0]
    n = ids.shape[1]
    rows_noise = torch.cat([torch.zeros_like(noise[:1]), noise], 0)
    x = run.embed(ids.expand(S + 1, -1), rows_noise, start)
    pe = run.steps.position_embeddings(x)
    xs, ks, vs, attns, cx, ca, cm = [], [], [], [], [], [], []
    for j in range(run.n_layers):
        xs.append(x[1:])
        cx.append(x[0])
        cache = _PrefixCache(record=True)
        rec: dict = {}
        x = run.block(j, x, cache, run.mask(j, 0, n), pe, rec=rec)
        assert cache.seen is not None
        ks.append(cache.seen[0][1:])
        vs.append(cache.seen[1][1:])
        attns.append(rec["attn"][1:] if "mlp" in kinds else None)
        ca.append(rec["attn"][0] if "attn" in kinds else None)
        cm.append(rec["mlp"][0] if "mlp" in kinds else None)
    xs.append(x[1:])
    cx.append(x[0])
    p = run.probs(x[:, -1], target_id)
    return _Runs(xs, ks, vs, attns, cx, ca, cm, float(p[0]), float(p[1:].mean()))


@dataclass
class _Cell:
    kind: str
    layer: int  # centre layer (the result row)
    join: int  # first layer whose input differs from the corrupted run (n_layers: none)
    last: int  # restorations in layers join..last-1 (exclusive end of the window)


def _cells_for(kinds: Sequence[str], layer_list: Sequence[int], n_layers: int, window: int) -> list[_Cell]:
    cells = []
    for k in kinds:
        for L in layer_list:
            w = window_layers(L, n_layers, k, window)
            cells.append(_Cell(k, L, w.start + 1, w.stop))
    return cells


@torch.no_grad()
def trace_prompt_fast(
    # the prompt, the method's parameters and the batching, as patching.trace_prompt has them
    model: nn.Module, input_ids: torch.Tensor, corrupt: tuple[int, int], target_id: int, noise: torch.Tensor,
    window: int, kinds: Sequence[str] = KINDS, layers: Sequence[int] | None = None,
    max_rows: int = 128, progress: Callable[[int, int], None] | None = None,
    # the engine's own options
    *, max_bytes: int | None = None, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
) -> TraceResult:
    """Trace one prompt; same arguments and result as ``patching.trace_prompt`` (see the module docstring).

    ``input_ids`` is (1, n_tokens) or (n_tokens,); ``noise`` is (samples, end-start, hidden). ``layers``
    restricts the centre layers traced. ``max_rows``/``max_bytes`` bound the batch (identical results for any
    bound). ``device``/``dtype``, when given, must be where and how the model is loaded (checked), since the
    engine never moves or casts the caller's model (the loaders do: ``models.<name>.dtype``). A job that traces
    many prompts uses :class:`Engine` instead (the model's float32 head is prepared once).
    """
    engine = Engine(model)
    if device is not None and torch.device(device).type != engine.run.device.type:
        raise ValueError(f"model is on {engine.run.device}, not {device}; move it before tracing")
    if dtype is not None and dtype != engine.run.dtype:
        raise ValueError(f"model is {engine.run.dtype}, not {dtype}; load it in the dtype to trace in")
    return engine.trace(input_ids, corrupt, target_id, noise, window, kinds, layers, max_rows, progress,
                        max_bytes=max_bytes)


class Engine:
    """The fast engine bound to one model: what depends only on the model (its layout, the float32 copies of
    the final norm and the LM head of a bf16/fp16 model) is prepared once, then :meth:`trace` traces prompts."""

    def __init__(self, model: nn.Module):
        self.config = model.config  # the sizes that bound a batch (batching.RowDims)
        self.run = _Runner(model)

    @torch.no_grad()
    def trace(self, input_ids: torch.Tensor, corrupt: tuple[int, int], target_id: int, noise: torch.Tensor,
              window: int, kinds: Sequence[str] = KINDS, layers: Sequence[int] | None = None,
              max_rows: int = 128, progress: Callable[[int, int], None] | None = None,
              *, max_bytes: int | None = None) -> TraceResult:
        """``trace_prompt_fast`` without its model argument (and without its device/dtype checks)."""
        return _trace(self.run, self.config, input_ids, corrupt, target_id, noise, window, kinds, layers,
                      max_rows, progress, max_bytes)


def _trace(run: _Runner, config, input_ids: torch.Tensor, corrupt: tuple[int, int], target_id: int,
           noise: torch.Tensor, window: int, kinds: Sequence[str], layers: Sequence[int] | None, max_rows: int,
           progress: Callable[[int, int], None] | None, max_bytes: int | None) -> TraceResult:
    ids = input_ids.to(run.device)
    if ids.dim() == 1:
        ids = ids[None]
    n = ids.shape[1]
    start, end = corrupt
    S = noise.shape[0]
    check_noise(corrupt, noise.shape[1])
    check_kinds(kinds)
    L = run.n_layers
    layer_list = centre_layers(L, layers)
    noise = noise.to(run.device)

    R = _record(run, ids, noise, start, target_id, kinds)
    result = TraceResult(R.p_clean, R.p_corrupted)
    for k in kinds:
        result.restored[k] = np.full((len(layer_list), n), R.p_corrupted)
        result.layers[k] = layer_list
    row_of_layer = {lay: i for i, lay in enumerate(layer_list)}

    cells = sorted(_cells_for(kinds, layer_list, L, window), key=lambda c: c.join)
    first = start if end > start else n  # positions before the first corrupted token are no-ops
    pe_full = run.steps.position_embeddings(R.x[0])
    d = R.x[0].shape[-1]
    dims = RowDims.of(config, d, kv=int(R.k[0].shape[1] * R.k[0].shape[3]), elem=R.x[0].element_size())
    plan = batch_plan(cells, first, n, S, dims, max_rows, max_bytes)
    masks: dict[tuple[int, int], torch.Tensor] = {}
    sample_rows = torch.arange(S, device=run.device)
    for b, (t, chunk) in enumerate(plan):
        m = n - t
        C = len(chunk)
        x = torch.empty((C * S, m, d), dtype=run.dtype, device=run.device)
        pe = None if pe_full is None else (pe_full[0][:, t:], pe_full[1][:, t:])
        joins = [c.join for c in chunk]
        ci = 0  # cells [0, ci) have joined
        for j in range(joins[0], L + 1):
            c0 = ci
            while ci < C and joins[ci] == j:
                ci += 1
            if ci > c0:  # rows of cells c0..ci-1 enter at layer j
                x[c0 * S : ci * S].view(ci - c0, S, m, d).copy_(R.x[j][None, :, t:])
                for c in range(c0, ci):
                    x[c * S : (c + 1) * S, 0] = _join_value(run, R, chunk[c], t)
            if j == L or ci == 0:
                continue
            rows = ci * S
            attn_rows = [c for c in range(ci) if chunk[c].kind == "attn" and j < chunk[c].last]
            mlp_rows = [c for c in range(ci) if chunk[c].kind == "mlp" and j < chunk[c].last]
            ap = (_rows(attn_rows, sample_rows), R.clean_attn[j][t]) if attn_rows else None
            mp = (_rows(mlp_rows, sample_rows), R.clean_mlp[j][t]) if mlp_rows else None
            key = (j if run.steps.layer_specific_mask(j) else -1, t)
            if key not in masks:
                masks[key] = run.mask(j, t, n)
            cache = _PrefixCache(R.k[j][:, :, :t], R.v[j][:, :, :t])
            if j < L - 1:
                x[:rows] = run.block(j, x[:rows], cache, masks[key], pe, ap, mp)
            else:  # last block: every position feeds the attention, only the last one needs the rest
                a = _apply(run.steps.attention(j, x[:rows], cache, masks[key], pe), ap)
                last = slice(m - 1, m)
                x[:rows, last] = run.tail(j, x[:rows, last], a[:, last], mp if m == 1 else None)
        probs = run.probs(x[:, -1], target_id).view(C, S).mean(1).cpu().numpy()
        for c, pr in zip(chunk, probs, strict=True):
            result.restored[c.kind][row_of_layer[c.layer], t] = pr
        if progress is not None:
            progress(b + 1, len(plan))
    return result


def _rows(cells: list[int], sample_rows: torch.Tensor) -> torch.Tensor:
    c = torch.tensor(cells, device=sample_rows.device)
    return (c[:, None] * sample_rows.numel() + sample_rows[None]).reshape(-1)


def _join_value(run: _Runner, R: _Runs, cell: _Cell, t: int) -> torch.Tensor:
    """Value at position t of the input of layer ``cell.join`` (S, d): the first restored layer's output."""
    a = cell.join - 1  # first restored layer
    if cell.kind == "hidden":
        return R.clean_x[a + 1][t]
    x = R.x[a][:, t : t + 1]  # (S, 1, d) corrupted input of layer a at t
    S = x.shape[0]
    if cell.kind == "mlp":
        f = R.clean_mlp[a][t].expand(S, 1, -1)
        return run.tail(a, x, R.attn[a][:, t : t + 1], f=f)[:, 0]
    attn = R.clean_attn[a][t].expand(S, 1, -1)
    return run.tail(a, x, attn)[:, 0]


__all__ = ["Engine", "trace_prompt_fast"]
