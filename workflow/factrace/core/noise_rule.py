"""The noise rule: the multiplier of the subjects' embedding std that the noise of one (model, modality) gets.

One rule for every model and modality, computed, not chosen: the candidates are ``tracing.noise_multiplier`` (the
minimum; ROME's 3) and the values of ``tracing.noise_grid`` above it, in ascending order. The multiplier is the
first candidate under which the median over the traced facts of ``p_corrupted / p_clean`` (of the answer's first
token) is at most ``tracing.noise_target_ratio``; the candidates above it are not evaluated. When none reaches the
target, the largest candidate is used and the choice is flagged (``reached: false``, and a warning).

:func:`choose_multiplier` is pure: the caller passes the function that measures the median ratio under a
multiplier, with its own forward passes (the trace stage's noise job, ``factrace.tracing.scale``, and the offline
speech LM's build evaluation, ``factrace.models.offline_speechlm``). The rule lives in ``core`` because both use
it and ``models`` sits below ``tracing`` in the package's layers (pyproject.toml, import-linter contracts).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NoiseRule:
    """The rule's settings: ``tracing.noise_multiplier`` (the minimum), ``tracing.noise_grid`` and
    ``tracing.noise_target_ratio``."""

    minimum: float
    grid: tuple[float, ...]
    target_ratio: float

    def __post_init__(self) -> None:
        if not self.minimum > 0:
            raise ValueError(f"the minimum noise multiplier must be > 0, got {self.minimum}")
        if not 0 < self.target_ratio <= 1:
            raise ValueError(f"the target ratio p_corrupted / p_clean must be in (0, 1], got {self.target_ratio}")

    @classmethod
    def from_config(cls, tracing: Mapping[str, Any]) -> NoiseRule:
        """From the config's ``tracing`` section (the schema fills the defaults)."""
        return cls(minimum=float(tracing["noise_multiplier"]), grid=tuple(float(g) for g in tracing["noise_grid"]),
                   target_ratio=float(tracing["noise_target_ratio"]))

    @classmethod
    def from_args(cls, args: Any) -> NoiseRule:
        """From the options of :func:`add_noise_rule_args`."""
        return cls(minimum=float(args.noise_multiplier), grid=tuple(float(g) for g in args.noise_grid),
                   target_ratio=float(args.noise_target_ratio))

    def candidates(self) -> list[float]:
        """The multipliers tried, ascending: the minimum, then the grid values above it."""
        return sorted({self.minimum, *(g for g in self.grid if g > self.minimum)})

    def as_dict(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "grid": list(self.grid), "target_ratio": self.target_ratio}


@dataclass(frozen=True)
class NoiseChoice:
    """The multiplier chosen, its median ratio, whether it reached the target, and every (multiplier, median
    ratio) evaluated, ascending."""

    multiplier: float
    median_ratio: float | None
    reached: bool
    evaluated: tuple[tuple[float, float | None], ...]

    def as_dict(self) -> dict[str, Any]:
        """The fields that the noise JSON and eval.json record."""
        return {"multiplier": self.multiplier, "median_ratio": self.median_ratio, "reached": self.reached,
                "medians_evaluated": [{"multiplier": m, "median_ratio": r} for m, r in self.evaluated]}


def add_noise_rule_args(parser: Any) -> None:
    """The rule's settings as command-line options (the rules pass the config's; no defaults of their own)."""
    parser.add_argument("--noise-multiplier", type=float, required=True,
                        help="tracing.noise_multiplier: the smallest noise multiplier")
    parser.add_argument("--noise-grid", type=float, nargs="+", required=True,
                        help="tracing.noise_grid: the multipliers tried above it")
    parser.add_argument("--noise-target-ratio", type=float, required=True,
                        help="tracing.noise_target_ratio: the median p_corrupted / p_clean to reach")


def _reaches(ratio: float | None, target: float) -> bool:
    return ratio is not None and not math.isnan(ratio) and ratio <= target


def choose_multiplier(rule: NoiseRule, median_ratio_at: Callable[[float], float | None],
                      what: str = "noise") -> NoiseChoice:
    """The rule (module doc): ``median_ratio_at(multiplier)`` is the median ``p_corrupted / p_clean`` over the
    traced facts under that multiplier (None or NaN: not measurable, never reaching). ``what`` names the
    (model, modality) in the warning given when no candidate reaches the target."""
    evaluated: list[tuple[float, float | None]] = []
    for m in rule.candidates():
        r = median_ratio_at(m)
        r = None if r is None or math.isnan(float(r)) else float(r)
        evaluated.append((m, r))
        if _reaches(r, rule.target_ratio):
            return NoiseChoice(m, r, True, tuple(evaluated))
    m, r = evaluated[-1]
    log.warning("%s: no noise multiplier in %s reaches median p_corrupted / p_clean <= %g (at %g: %s); using %g, "
                "flagged reached: false", what, [c for c, _ in evaluated], rule.target_ratio, m,
                "not measurable" if r is None else f"{r:.3g}", m)
    return NoiseChoice(m, r, False, tuple(evaluated))


def median_ratio(p_clean: Iterable[float], p_corrupted: Iterable[float]) -> float | None:
    """Median over facts of ``p_corrupted / p_clean``, facts with ``p_clean == 0`` left out; None without any."""
    ratios = [c / p for p, c in zip(p_clean, p_corrupted, strict=True) if p > 0]
    return float(statistics.median(ratios)) if ratios else None
