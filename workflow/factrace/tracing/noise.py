"""Corruption noise: Gaussian noise on the subject's input embeddings, seeded per fact."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def noise_seed(seed: int, known_id: int, modality: str = "t2t") -> int:
    """A per-fact seed derived from the config seed, stable across runs, shards and machines."""
    blob = f"{seed}:{known_id}:{modality}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def make_noise(samples: int, n_tokens: int, hidden: int, scale: float, seed: int) -> torch.Tensor:
    """``scale`` x standard normal noise of shape (samples, n_tokens, hidden), float32, drawn on the CPU.

    Drawn with numpy's PCG64 so that the same seed gives the same noise on every device and torch version.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal((samples, n_tokens, hidden), dtype=np.float32)
    return torch.from_numpy(z) * float(scale)


def embedding_std(vectors: torch.Tensor) -> float:
    """Standard deviation over all values of the subject-token embeddings (ROME's ``collect_embedding_std``)."""
    return float(vectors.float().std().item())
