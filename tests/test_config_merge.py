"""Config the Snakemake way (issue 24, 3): a `--configfile` is merged over config/config.yaml key by key (its
`models:` replaces the default's models whole; `--config` wins over both), a bad config is a few lines naming the
file and the key, and combinations that could only fail in a job fail before any job."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from factrace.core.config import REPLACED_WHOLE, load_config, merge_configs, with_defaults
from factrace.core.config_errors import ConfigError, config_problems
from hypothesis import given, settings
from hypothesis import strategies as st
from test_workflow import REPO, _planned_jobs, copy_workflow, snakemake

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())

# ------------------------------------------------------------------------------------------- the merge's contract
KEYS = st.sampled_from(["a", "b", "c", "models"])  # few keys: override and default often share them
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text("xy", max_size=2)
VALUES = st.recursive(SCALARS | st.lists(SCALARS, max_size=2),
                      lambda inner: st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)
CONFIGS = st.dictionaries(KEYS, VALUES, max_size=4)


def _get(d: Any, path: tuple) -> Any:
    for k in path:
        d = d[k]
    return d


def _leaves(d: dict, prefix: tuple = ()):
    """(path, value) of every non-mapping value and every empty mapping."""
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, (*prefix, k))
        else:
            yield (*prefix, k), v


def _merged_through(override: dict, path: tuple) -> bool:
    """Whether `merge_configs` merges into `path` of the default (every proper prefix is a mapping in override,
    not a replaced top-level key, and the path itself absent) rather than replacing it or a parent of it."""
    node = override
    for i, k in enumerate(path):
        if k not in node:
            return True
        if (i == 0 and k in REPLACED_WHOLE) or not isinstance(node[k], dict):
            return False
        node = node[k]
    return False  # the override gives the path itself


@settings(max_examples=300, deadline=None)
@given(CONFIGS, CONFIGS)
def test_merge_contract(default, override):
    before = copy.deepcopy((default, override))
    out = merge_configs(default, override)
    assert (default, override) == before  # pure
    # every key of the override wins
    for path, value in _leaves(override):
        got = _get(out, path)
        if value == {}:  # an empty mapping merges nothing in: the default's mapping stays, unless replaced
            assert isinstance(got, dict)
            if path == ("models",):
                assert got == {}
        else:
            assert got == value, path
    # `models` is replaced whole (nested keys named `models` are merged like any other)
    if "models" in override:
        assert out["models"] == override["models"]
    # every other key of the default is kept
    for path, value in _leaves(default):
        if _merged_through(override, path):
            assert _get(out, path) == value, path
    # and nothing else: every leaf of the result comes from one of them
    for path, value in _leaves(out):
        sources = [d for d in (override, default) if _has_path(d, path)]
        assert sources and any(_get(d, path) == value for d in sources), path


def _has_path(d: Any, path: tuple) -> bool:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return False
        d = d[k]
    return True


def test_merge_shares_nothing_with_its_inputs():
    default, override = {"tracing": {"kinds": ["hidden"]}}, {"speech": {"tts": {"backend": "espeak"}}}
    out = merge_configs(default, override)
    out["tracing"]["kinds"].append("mlp")
    out["speech"]["tts"]["backend"] = "melotts"
    assert default == {"tracing": {"kinds": ["hidden"]}} and override["speech"]["tts"]["backend"] == "espeak"


# ------------------------------------------------------------------------------------- the shipped config files
def test_paper_config_inherits_nothing_from_the_offline_default(monkeypatch):
    """config/paper.yaml merged over config/config.yaml is config/paper.yaml alone (schema defaults filled): no
    offline model, no offline-only tracing value. A key added to the default that the paper config does not set
    fails here."""
    monkeypatch.chdir(REPO)
    merged = load_config(REPO / "config" / "paper.yaml")
    alone = load_config(REPO / "config" / "paper.yaml", default=None)
    assert sorted(merged["models"]) == ["llama2_7b", "spiritlm_base", "spiritlm_expressive"]
    assert merged == alone


def test_load_config_merges_a_partial_file_over_the_default(tmp_path, monkeypatch):
    """`factrace plan/estimate --configfile` read the config as Snakemake does."""
    monkeypatch.chdir(REPO)
    (tmp_path / "partial.yaml").write_text("tracing: {samples: 5}\n")
    cfg = load_config(tmp_path / "partial.yaml")
    assert cfg["tracing"]["samples"] == 5
    assert cfg["tracing"]["max_facts_per_shard"] == DEFAULT["tracing"]["max_facts_per_shard"]
    assert sorted(cfg["models"]) == sorted(DEFAULT["models"])


# ------------------------------------------------------------------------------------- impossible combinations
def _problems(edit) -> list[str]:
    """config_problems of the default config edited, filled by the schema (with_defaults would raise on them)."""
    from factrace.core.config import SCHEMA
    from factrace.core.config_errors import fill_and_validate

    cfg = copy.deepcopy(DEFAULT)
    edit(cfg)
    return [msg for _, msg in config_problems(fill_and_validate(cfg, yaml.safe_load(SCHEMA.read_text())))]


def test_the_default_config_has_no_problem():
    assert config_problems(with_defaults(DEFAULT)) == []


def test_with_defaults_raises_on_an_impossible_combination():
    cfg = copy.deepcopy(DEFAULT)
    cfg["models"]["smollm2"]["modalities"] = ["t2t", "s2t"]
    with pytest.raises(ConfigError, match="model 'smollm2' cannot read speech"):
        with_defaults(cfg)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda c: c["models"]["smollm2"].update(modalities=["t2t", "s2t"]), "model 'smollm2' cannot read speech"),
    (lambda c: c["speech"].update(enabled=False), "`speech.enabled` is false, but model 'speechlm' traces s2t"),
    (lambda c: c["speech"]["units"].update(backend="spiritlm"), "trained on mfcc-kmeans units"),
    (lambda c: c["speech"]["speechlm"].update(backbone="smollm2"), "`speech.speechlm.backbone` is 'smollm2'"),
    (lambda c: c["models"]["speechlm_backbone"].pop("hidden"), "needs `models.speechlm_backbone.hidden`"),
], ids=["s2t-text-only", "s2t-speech-off", "units", "backbone", "backbone-size"])
def test_impossible_combinations(edit, expected):
    problems = _problems(edit)
    assert len(problems) == 1 and expected in problems[0], problems


# -------------------------------------------------------------------------------------- Snakemake, end to end
@pytest.fixture(scope="module")
def wd(tmp_path_factory) -> Path:
    wd = tmp_path_factory.mktemp("cfg")
    copy_workflow(wd)
    return wd


def test_a_partial_configfile_plans_the_default_run_with_its_values(wd):
    (wd / "partial.yaml").write_text("tracing: {samples: 5}\nresults: from_file\n")
    proc = snakemake(wd, "-n", "-p", "--configfile", "partial.yaml", "--config", "results=from_cli")
    out = proc.stdout
    jobs = _planned_jobs(out)
    assert jobs["trace"] == 2 * 4 and jobs["convert_model"] == 1 and jobs["build_speechlm"] == 1  # the default run
    assert "--samples 5" in out and "--samples 10" not in out  # the file's value over the default's
    assert "from_cli/trace/" in out and "from_file/" not in out  # --config over the file


def _short_error(wd: Path, name: str, text: str) -> str:
    (wd / name).write_text(text)
    proc = snakemake(wd, "-n", "--configfile", name, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert len(out.strip().splitlines()) < 15, out
    assert "Traceback" not in out and "Failed validating" not in out and "Job stats" not in out, out
    assert "rule " not in out, out  # before any job
    return out


def test_a_misspelt_key_is_a_short_error_naming_the_file_and_the_key(wd):
    out = _short_error(wd, "typo.yaml", "tracing: {sampels: 5}\n")
    assert "typo.yaml: `tracing.sampels` is not a config key; did you mean `tracing.samples`?" in out, out


def test_s2t_on_the_text_only_model_fails_before_any_job(wd):
    cfg = {"models": copy.deepcopy(DEFAULT["models"])}
    cfg["models"]["smollm2"]["modalities"] = ["t2t", "s2t"]
    out = _short_error(wd, "s2t.yaml", yaml.safe_dump(cfg))
    assert "s2t.yaml: model 'smollm2' cannot read speech" in out, out
