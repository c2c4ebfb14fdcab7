"""Small pure helpers of the CLI layer."""

from __future__ import annotations

import pandas as pd
from factrace.analysis.peaks import category_peaks
from factrace.filtering.modality import drop_by_asr


def test_asr_drop_is_a_row_with_a_reason():
    filt = pd.DataFrame({"known_id": [1, 2, 3], "kept": [True, True, False], "reason": ["", "", "no match"]})
    asr = pd.DataFrame({"known_id": [1, 2, 3], "kept": [True, False, False],
                        "reason": ["", "wer 0.900 > threshold 0.5", "wer 1.000 > threshold 0.5"]})
    out = drop_by_asr(filt, asr)
    assert out["kept"].tolist() == [True, False, False]
    assert out.loc[1, "reason"] == "ASR check: wer 0.900 > threshold 0.5"
    assert out.loc[2, "reason"] == "no match"  # already dropped by the filter: its own reason stays
    assert len(out) == 3


def test_no_asr_drop_leaves_the_filter_as_it_is():
    filt = pd.DataFrame({"known_id": [1, 2], "kept": [True, False], "reason": ["", "no match"]})
    asr = pd.DataFrame({"known_id": [1, 2], "kept": [True, True], "reason": ["", ""]})
    pd.testing.assert_frame_equal(drop_by_asr(filt, asr), filt)


def test_category_peaks_pick_the_layer_of_the_largest_aie():
    aie = pd.DataFrame({
        "model": "m", "modality": "t2t", "kind": "mlp", "layer": [0, 1, 2, 0, 1, 2],
        "category": ["last subject"] * 3 + ["last token"] * 3, "aie": [0.1, 0.5, 0.2, 0.0, 0.1, 0.3],
        "ci_low": 0.0, "ci_high": 1.0, "n": 4,
    })
    peaks = category_peaks(aie).set_index("category")
    assert peaks.loc["last subject", "peak_layer"] == 1 and peaks.loc["last token", "peak_layer"] == 2
