"""How far a trace in bf16 is from the same trace in float32, and the tolerance README states for it.

A model configured with ``dtype: bfloat16`` runs its blocks in bf16; the noise, the final norm, the LM head and
P(target) stay float32 (``tracing.engine``). :func:`compare` measures one prompt's (or one mean grid's) two traces
cell by cell: the largest AIE difference, the p_clean difference, and per kind whether the peak (the cell of the
largest AIE) is the same cell, with the float32 AIE lost by reading the other trace's peak instead (0 when the
peaks agree; at most twice the largest difference when they do not, so a differing peak within the tolerance
is a near-tie, not a different answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from factrace.tracing.method import TraceResult

#: The largest |AIE_bf16 - AIE_float32| of any cell of a figure (the mean over the traced facts) under which a
#: model traces in bf16 in the offline default (README "Tracing in bf16"; tests/test_bf16.py on tiny models,
#: ``factrace dtype-compare`` on a demo). Single prompts differ more (``factrace bench tracing`` reports them).
BF16_AIE_TOLERANCE = 0.01


@dataclass(frozen=True)
class KindDifference:
    kind: str
    max_aie_diff: float  # largest |AIE_other - AIE_ref| over the kind's cells
    peak_ref: tuple[int, int]  # (layer row, position) of the largest AIE in the reference trace
    peak_other: tuple[int, int]
    peak_gap: float  # reference AIE at its own peak minus the reference AIE at the other's peak (>= 0)

    @property
    def same_peak(self) -> bool:
        return self.peak_ref == self.peak_other


@dataclass(frozen=True)
class TraceDifference:
    max_aie_diff: float  # over every kind's cells
    p_clean_diff: float
    p_corrupted_diff: float
    kinds: tuple[KindDifference, ...]

    @property
    def same_peaks(self) -> bool:
        return all(k.same_peak for k in self.kinds)

    def as_dict(self) -> dict:
        return {"max_aie_diff": self.max_aie_diff, "p_clean_diff": self.p_clean_diff,
                "p_corrupted_diff": self.p_corrupted_diff, "same_peaks": self.same_peaks,
                "peaks": {k.kind: {"same": k.same_peak, "ref": list(k.peak_ref), "other": list(k.peak_other),
                                   "gap": k.peak_gap} for k in self.kinds}}


def aie_grid(result: TraceResult, kind: str) -> np.ndarray:
    """AIE of every (layer row, position) cell of ``kind``: p_restored - p_corrupted."""
    return np.asarray(result.restored[kind], dtype=np.float64) - float(result.p_corrupted)


def peak_cell(grid: np.ndarray) -> tuple[int, int]:
    """The (row, column) of the largest value (the first one in row-major order on a tie)."""
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return int(r), int(c)


def mean_result(results: Sequence[TraceResult]) -> TraceResult:
    """The mean of traces of equal shape (prompts of one length and corrupted range): their mean AIE grid is what
    a figure's panel shows."""
    if not results:
        raise ValueError("no traces to average")
    first = results[0]
    out = TraceResult(float(np.mean([r.p_clean for r in results])), float(np.mean([r.p_corrupted for r in results])))
    for k in first.restored:
        shapes = {r.restored[k].shape for r in results}
        if len(shapes) != 1:
            raise ValueError(f"kind {k}: traces of different shapes {sorted(shapes)} cannot be averaged")
        # each prompt's AIE, averaged, plus the mean p_corrupted: aie_grid of the mean is the mean AIE
        out.restored[k] = np.mean([aie_grid(r, k) for r in results], axis=0) + out.p_corrupted
        out.layers[k] = list(first.layers[k])
    return out


def compare(ref: TraceResult, other: TraceResult) -> TraceDifference:
    """``other`` (e.g. bf16) against ``ref`` (float32) on the same prompt, noise and layers."""
    if ref.restored.keys() != other.restored.keys():
        raise ValueError(f"kinds differ: {sorted(ref.restored)} vs {sorted(other.restored)}")
    kinds = []
    for k in ref.restored:
        if list(ref.layers[k]) != list(other.layers[k]) or ref.restored[k].shape != other.restored[k].shape:
            raise ValueError(f"kind {k}: the traces cover different layers or positions")
        a, b = aie_grid(ref, k), aie_grid(other, k)
        pa, pb = peak_cell(a), peak_cell(b)
        kinds.append(KindDifference(k, float(np.abs(a - b).max()), pa, pb, float(a[pa] - a[pb])))
    return TraceDifference(max((d.max_aie_diff for d in kinds), default=0.0), abs(ref.p_clean - other.p_clean),
                           abs(ref.p_corrupted - other.p_corrupted), tuple(kinds))


__all__ = ["BF16_AIE_TOLERANCE", "KindDifference", "TraceDifference", "aie_grid", "compare", "mean_result",
           "peak_cell"]
