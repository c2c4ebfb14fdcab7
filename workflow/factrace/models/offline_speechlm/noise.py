"""eval.json's noise measures (``noise_t2t``, ``noise_s2t``) under the noise rule of the trace stage.

The multiplier of each modality is chosen by :func:`factrace.core.noise_rule.choose_multiplier`, the rule that
the workflow's noise job applies to the traces (``tracing.noise_multiplier``, ``noise_grid``,
``noise_target_ratio``), each candidate measured by :func:`factrace.models.offline_speechlm.evaluate.noise_ratios`
on the build's traced facts (the build's own noise draws and std, :mod:`~factrace.models.offline_speechlm.evaluate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factrace.core.noise_rule import NoiseRule, choose_multiplier


def noise_under_rule(model: Any, items: Sequence[tuple[list[int], int, int, int]], rule: NoiseRule, samples: int,
                     seed: int, what: str) -> dict[str, Any]:
    """:func:`~factrace.models.offline_speechlm.evaluate.noise_ratios` under the multiplier that the noise rule
    chooses (``items``: ids, subject start, subject end, target id), with the rule's fields: ``reached``,
    ``medians_evaluated`` and the rule's settings."""
    from factrace.models.offline_speechlm.evaluate import noise_ratios

    records: dict[float, dict[str, Any]] = {}

    def ratio_at(multiplier: float) -> float | None:
        records[multiplier] = noise_ratios(model, items, multiplier, samples, seed)
        return records[multiplier]["median_ratio"]

    choice = choose_multiplier(rule, ratio_at, what)
    return {**records[choice.multiplier], **choice.as_dict(), "rule": rule.as_dict()}
