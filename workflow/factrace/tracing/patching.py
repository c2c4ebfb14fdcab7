"""Causal tracing by hook-based activation patching: the reference path.

It runs the method of :mod:`factrace.tracing.method` (what is corrupted, restored and scored) as literally as
possible: a clean forward that records every traced module's output, a corrupted forward of the noise samples,
then every cell (kind, centre layer, position) as one independent forward over ``samples`` rows with forward
hooks that add the noise and restore the clean outputs; cells are batched up to ``max_rows`` rows.
This path is simple on purpose: the fast engine (``factrace.tracing.engine``) is checked against it. Its forward
hooks (add the noise to the input embeddings, record module outputs, restore them) are here too; the modality
gap (``factrace.gap``) uses ``hooked`` and ``record_hook``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from factrace.models.families import Layout
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

log = logging.getLogger(__name__)


# -- the hooks ------------------------------------------------------------------------------------------
def _tensor(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out  # type: ignore[return-value,index]


def _replace(out: object, new: torch.Tensor) -> object:
    if isinstance(out, tuple):
        return (new, *out[1:])
    return new


@contextlib.contextmanager
def hooked(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def add_noise_hook(embed: nn.Module, rows: torch.Tensor, start: int, noise: torch.Tensor):
    """Add ``noise[k]`` (tokens ``start..start+n``) to the embedding output of batch row ``rows[k]``."""

    def hook(_m: nn.Module, _inp: object, out: object) -> object:
        return _replace(out, add_noise(_tensor(out), start, noise, rows))

    return embed.register_forward_hook(hook)


def record_hook(module: nn.Module, store: dict[nn.Module, torch.Tensor]):
    """Keep a detached copy of ``module``'s output (first batch row) in ``store``."""

    def hook(m: nn.Module, _inp: object, out: object) -> None:
        store[m] = _tensor(out)[0].detach().clone()

    return module.register_forward_hook(hook)


def patch_hook(module: nn.Module, rows: torch.Tensor, positions: torch.Tensor, clean: torch.Tensor):
    """Overwrite the output at (``rows[k]``, ``positions[k]``) with the clean output at ``positions[k]``."""

    def hook(_m: nn.Module, _inp: object, out: object) -> object:
        return _replace(out, restore(_tensor(out).clone(), rows, positions, clean[positions]))

    return module.register_forward_hook(hook)


# -- the reference path ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    kind: str
    layer: int
    position: int


@torch.no_grad()
def target_probs(model: nn.Module, input_ids: torch.Tensor, target_id: int) -> torch.Tensor:
    """P(target) at the last position for every row of ``input_ids`` (float32)."""
    return target_probability(model(input_ids=input_ids, use_cache=False).logits[:, -1], target_id)


@torch.no_grad()
def clean_outputs(
    model: nn.Module, input_ids: torch.Tensor, kinds: Sequence[str]
) -> tuple[torch.Tensor, dict[tuple[str, int], torch.Tensor]]:
    """One clean forward; returns last-position logits and every traced module's output (n_tokens, d)."""
    layout = Layout.of(model)
    store: dict[nn.Module, torch.Tensor] = {}
    mods = {(k, L): layout.module(k, L) for k in kinds for L in range(layout.n_layers)}
    handles = [record_hook(m, store) for m in mods.values()]
    with hooked(handles):
        logits = model(input_ids=input_ids[:1], use_cache=False).logits[0, -1].float()
    return logits, {key: store[m] for key, m in mods.items()}


@torch.no_grad()
def corrupted_probability(model: nn.Module, ids: torch.Tensor, start: int, target_id: int,
                          noise: torch.Tensor) -> float:
    """The corrupted run: P(target) at the last position, ``noise[k]`` added to the input embeddings of tokens
    ``start..`` of sample k, averaged over the samples. ``ids`` is (1, n_tokens) on the model's device."""
    samples = noise.shape[0]
    rows = torch.arange(samples, device=ids.device)
    with hooked([add_noise_hook(Layout.of(model).embed, rows, start, noise)]):
        return float(target_probs(model, ids.expand(samples, -1), target_id).mean())


@torch.no_grad()
def clean_and_corrupted(model: nn.Module, input_ids: torch.Tensor, corrupt: tuple[int, int], target_id: int,
                        noise: torch.Tensor, p_clean: float | None = None) -> tuple[float, float]:
    """(p_clean, p_corrupted) of one prompt as :func:`trace_prompt` computes them, without restoring any cell
    (the noise rule's measure, factrace.tracing.scale); a known ``p_clean`` is not computed again."""
    ids = input_ids.to(next(model.parameters()).device)
    if ids.dim() == 1:
        ids = ids[None]
    check_noise(corrupt, noise.shape[1])
    if p_clean is None:
        p_clean = float(target_probs(model, ids[:1], target_id)[0])
    return p_clean, corrupted_probability(model, ids, corrupt[0], target_id, noise)


def _batches(cells: list[Cell], per_batch: int) -> list[list[Cell]]:
    return [cells[i : i + per_batch] for i in range(0, len(cells), per_batch)]


@torch.no_grad()
def trace_prompt(
    model: nn.Module,
    input_ids: torch.Tensor,
    corrupt: tuple[int, int],
    target_id: int,
    noise: torch.Tensor,
    window: int,
    kinds: Sequence[str] = KINDS,
    layers: Sequence[int] | None = None,
    max_rows: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> TraceResult:
    """Trace one prompt. ``input_ids`` is (1, n_tokens); ``noise`` is (samples, end-start, hidden).

    ``layers`` restricts the centre layers traced (a layer window of a split job); the default is all.
    """
    layout = Layout.of(model)
    device = next(model.parameters()).device
    ids = input_ids.to(device)
    if ids.dim() == 1:
        ids = ids[None]
    n_tokens = ids.shape[1]
    start = corrupt[0]
    samples = noise.shape[0]
    check_noise(corrupt, noise.shape[1])
    check_kinds(kinds)
    layer_list = centre_layers(layout.n_layers, layers)

    p_clean_logits, clean = clean_outputs(model, ids, kinds)
    p_clean = float(target_probability(p_clean_logits, target_id))

    p_corrupted = corrupted_probability(model, ids, start, target_id, noise)

    cells = [Cell(k, L, t) for k in kinds for L in layer_list for t in range(n_tokens)]
    per_batch = max(1, max_rows // samples)
    result = TraceResult(p_clean, p_corrupted)
    for k in kinds:
        result.restored[k] = np.full((len(layer_list), n_tokens), np.nan)
        result.layers[k] = layer_list
    row_of_layer = {L: i for i, L in enumerate(layer_list)}
    batches = _batches(cells, per_batch)
    for b, batch in enumerate(batches):
        n_rows = len(batch) * samples
        all_rows = torch.arange(n_rows, device=device)
        handles = [add_noise_hook(layout.embed, all_rows, start, noise.repeat(len(batch), 1, 1))]
        # group the patches by module: one hook per module with all its (row, position) pairs
        patches: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
        for c, cell in enumerate(batch):
            for L in window_layers(cell.layer, layout.n_layers, cell.kind, window):
                r, p = patches.setdefault((cell.kind, L), ([], []))
                r.extend(range(c * samples, (c + 1) * samples))
                p.extend([cell.position] * samples)
        for (k, L), (r, p) in patches.items():
            handles.append(
                patch_hook(
                    layout.module(k, L),
                    torch.tensor(r, device=device),
                    torch.tensor(p, device=device),
                    clean[(k, L)],
                )
            )
        with hooked(handles):
            probs = target_probs(model, ids.expand(n_rows, -1), target_id)
        probs = probs.view(len(batch), samples).mean(1).cpu().numpy()
        for cell, pr in zip(batch, probs, strict=True):
            result.restored[cell.kind][row_of_layer[cell.layer], cell.position] = pr
        if progress is not None:
            progress(b + 1, len(batches))
    return result
