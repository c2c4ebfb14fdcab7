"""Issue 21 (1): a window rule per model. An mlp/attn cell restores `models.<name>.window` layers when the config
gives it, else `tracing.window` capped at `tracing.window_max_fraction` of the model's layers (at least 1); one
function, `factrace.tracing.method.resolve_window`, used by the trace rule, the cost model and the figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from factrace.tracing.method import model_window, resolve_window, window_caption

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("n_layers", "window", "fraction", "override", "want"), [
    (32, 10, 0.34, None, 10),  # SpiritLM 7B, Llama-2-7B: ROME's and the paper's 10
    (30, 10, 0.34, None, 10),  # SmolLM2-135M: floor(10.2)
    (48, 10, 0.34, None, 10),  # a large model: tracing.window is the most
    (12, 10, 0.34, None, 4),
    (8, 10, 0.34, None, 2),  # the offline models, soon
    (4, 10, 0.34, None, 1),  # the offline models
    (3, 10, 0.34, None, 1),
    (2, 10, 0.34, None, 1),  # n_layers < 3: floor(0.68) = 0, at least 1
    (1, 10, 0.34, None, 1),
    (50, 20, 0.34, None, 17),  # 50 x 0.34 = 17.000000000000004 in floats: 17
    (8, 3, 0.5, None, 3),  # tracing.window below the cap
    (8, 10, 1.0, None, 8),  # no cap: the whole model
    (4, 10, 0.34, 3, 3),  # the override wins over the cap ...
    (32, 10, 0.34, 5, 5),  # ... and over tracing.window
    (2, 10, 0.34, 7, 7),  # ... even beyond the model (window_bounds clips it to the layers)
    (1, 1, 0.01, None, 1),
])
def test_the_window_rule(n_layers, window, fraction, override, want):
    assert resolve_window(n_layers, window, fraction, override) == want


@pytest.mark.parametrize(("args", "match"), [
    ((0, 10, 0.34, None), "at least 1 layer"),
    ((8, 10, 0.34, 0), "at least 1 layer"),
    ((8, 0, 0.34, None), "tracing.window"),
    ((8, 10, 0.0, None), "window_max_fraction"),
    ((8, 10, 1.5, None), "window_max_fraction"),
])
def test_the_window_rule_refuses_impossible_settings(args, match):
    with pytest.raises(ValueError, match=match):
        resolve_window(*args)


def test_the_configs_windows():
    """The offline default's 6-layer models get 2, SmolLM2 (30 layers) 10; the paper's 32-layer models keep 10;
    `models.<name>.window` overrides it."""
    from factrace.core.config import load_config, with_defaults

    offline = load_config(ROOT / "config" / "config.yaml")
    assert offline["tracing"]["window_max_fraction"] == 0.34
    assert {m: model_window(offline, m) for m in offline["models"]} == {
        "speechlm_backbone": 2, "speechlm": 2, "smollm2": 10}
    paper = load_config(ROOT / "config" / "paper.yaml")
    assert {model_window(paper, m) for m in paper["models"]} == {10}
    offline["models"]["speechlm"]["window"] = 3
    assert model_window(with_defaults(offline), "speechlm") == 3


def test_a_model_window_below_one_is_a_config_error():
    from factrace.core.config import load_config, with_defaults
    from factrace.core.config_errors import ConfigError

    cfg = load_config(ROOT / "config" / "config.yaml")
    cfg["models"]["speechlm"]["window"] = 0
    with pytest.raises(ConfigError, match=r"models\.speechlm\.window"):
        with_defaults(cfg)


def test_the_cost_model_uses_the_models_window():
    """The engine restarts an mlp/attn cell at its window's first layer: the 4-layer model's window of 1 costs less than
    a window of 4."""
    from factrace.core.config import load_config
    from factrace.planning.estimate import per_prompt_cost

    cfg = load_config(ROOT / "config" / "config.yaml")
    small = per_prompt_cost(cfg, "speechlm", "t2t", ("mlp",), "engine")
    cfg["tracing"]["window_max_fraction"] = 1.0  # the window is 4: every layer
    wide = per_prompt_cost(cfg, "speechlm", "t2t", ("mlp",), "engine")
    assert small["flops"] < wide["flops"]


def test_figure_titles_state_the_window():
    import pandas as pd
    from factrace.analysis.figures.heatmaps import panel_title

    aie = pd.DataFrame({"model": "m", "modality": "t2t", "kind": ["hidden", "mlp", "mlp"], "layer": [0, 0, 7],
                        "window": [1, 2, 2]})
    assert window_caption(2, 8) == "window 2 of 8 layers"
    assert panel_title(aie, "m", "t2t", "mlp", "M T->T") == "M T->T: MLP (window 2 of 8 layers)"
    assert panel_title(aie, "m", "t2t", "hidden", "M T->T") == "M T->T: Hidden states"
    assert panel_title(aie.drop(columns="window"), "m", "t2t", "mlp", "M T->T") == "M T->T: MLP"
