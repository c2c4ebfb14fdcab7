"""`make seeds`: its config runs exactly the default's miniature, and the seeds table puts runs side by side with
the spread of each number."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from factrace.analysis.seeds import seed_of, seeds_table, spread

ROOT = Path(__file__).resolve().parents[1]


def test_seeds_config_is_the_defaults_miniature():
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]
    seeds = yaml.safe_load((ROOT / "config" / "seeds.yaml").read_text())["models"]
    assert set(seeds) == {m for m, spec in default.items() if spec.get("convert", "").startswith("speechlm")}
    assert all(seeds[m] == default[m] for m in seeds)


def test_spread_of_numbers_and_labels():
    assert spread([0.5, 0.25, 0.75]) == "0.25 to 0.75"
    assert spread([3.0, 3.0]) == "3"
    assert spread(["prediction, layer 2", "prediction, layer 2"]) == "same"
    assert spread(["prediction, layer 2", "last subject, layer 0"]) == "differs"
    assert spread([None, float("nan")]) == "-"


def _run(root: Path, seed: int, peak: float, layer: int, carry: float) -> Path:
    run = root / f"seed-{seed}"
    (run / "compare").mkdir(parents=True)
    pd.DataFrame([{"model": "slm", "modality": "s2t", "fact_set": "text_only", "kind": "mlp", "peak_aie": peak,
                   "peak_category": "last subject", "peak_layer": layer}]).to_csv(run / "compare" / "peaks.csv",
                                                                                index=False)
    (run / "speechlm" / "slm").mkdir(parents=True)
    (run / "speechlm" / "slm" / "eval.json").write_text(json.dumps(
        {"summary": {"carry_over_speech": carry, "speech_main": 1.0}, "noise_s2t": {"multiplier": 5.0}}))
    return run


def test_seeds_table_side_by_side(tmp_path):
    runs = [_run(tmp_path, 2, 0.2, 1, 0.1), _run(tmp_path, 1, 0.4, 1, 0.0)]
    df = seeds_table(runs).set_index("what")
    assert list(df.columns) == ["seed 1", "seed 2", "spread"]  # sorted by seed
    peak = df.loc["slm s2t: facts learnt in text only mlp: grid max AIE"]
    assert (peak["seed 1"], peak["seed 2"], peak["spread"]) == (0.4, 0.2, "0.2 to 0.4")
    assert df.loc["slm s2t: facts learnt in text only mlp: at", "spread"] == "same"
    assert df.loc["speech LM, eval.json: carry-over, text-only facts the backbone knows", "spread"] == "0 to 0.1"
    assert df.loc["speech LM, eval.json: S->T noise multiplier (noise rule)", "spread"] == "5"
    with pytest.raises(ValueError, match="seed-N"):
        seed_of(tmp_path / "run-1")
    (tmp_path / "seed-3").mkdir()
    with pytest.raises(FileNotFoundError, match="unfinished"):
        seeds_table([tmp_path / "seed-3"])
