"""Forward hooks for the reference path: add the noise to the input embeddings, record module outputs and
restore them (the operations themselves are :func:`~factrace.tracing.method.add_noise` and ``restore``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from factrace.tracing.method import add_noise, restore


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
