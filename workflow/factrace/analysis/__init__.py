"""Analysis of causal traces: AIE with bootstrap CIs, modality tests, figures.

Pure functions over pandas DataFrames. ``aie`` and ``stats`` import no plotting library; ``figures`` and
``heatmaps`` (through ``plotting``, what every figure shares) set the matplotlib Agg backend on import.
"""

from __future__ import annotations

from .aie import (
    COMBINE_RULES,
    LOG_AIE_FLOOR,
    SPEECH_MODALITIES,
    aggregate_aie,
    aie_table,
    bootstrap_mean_ci,
    collapse_speech_positions,
    expand_categories,
    log_aie,
    prompt_category_effects,
)
from .peaks import category_peaks, category_ratios, peak_effects
from .stats import (
    PairedTests,
    SignFlip,
    holm,
    layer_bands,
    paired_tests,
    sign_flip,
    sign_flip_test,
)

__all__ = [
    "COMBINE_RULES",
    "LOG_AIE_FLOOR",
    "SPEECH_MODALITIES",
    "PairedTests",
    "SignFlip",
    "aggregate_aie",
    "aie_table",
    "bootstrap_mean_ci",
    "category_peaks",
    "category_ratios",
    "collapse_speech_positions",
    "expand_categories",
    "holm",
    "layer_bands",
    "log_aie",
    "paired_tests",
    "peak_effects",
    "prompt_category_effects",
    "sign_flip",
    "sign_flip_test",
]
