"""One source of defaults: the config schema (`workflow/schemas/config.schema.yaml`, filled by Snakemake's
`validate`). The config files name only keys of the schema, and the schema only keys that a config uses; no rule,
command-line option or library function repeats a default of its own."""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _deprecated(sub: dict[str, Any]) -> bool:
    return str(sub.get("description", "")).startswith("deprecated")


def schema_keys(node: dict[str, Any] = SCHEMA, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Dotted key -> its schema, for every property (a model's keys as `models.*.key`); deprecated ones aside."""
    out: dict[str, dict[str, Any]] = {}
    props = node.get("properties", {})
    for key, sub in props.items():
        if _deprecated(sub):
            continue
        path = f"{prefix}{key}"
        out[path] = sub
        out.update(schema_keys(sub, path + "."))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.update(schema_keys(extra, prefix + "*."))
    return out


def config_keys(cfg: dict[str, Any], prefix: str = "") -> set[str]:
    out = set()
    for key, value in cfg.items():
        path = f"{prefix}{key}"
        if prefix == "models.":
            path = "models.*"
        else:
            out.add(path)
        if isinstance(value, dict):
            out |= config_keys(value, path + ".")
    return out


CONFIGS = {name: yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("config.yaml", "paper.yaml")}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_config_key_is_in_the_schema(name):
    unknown = sorted(config_keys(CONFIGS[name]) - set(schema_keys()))
    assert not unknown, f"config/{name} has keys the schema does not define: {unknown}"


# optional keys no shipped config needs: a tokenizer kept apart from its checkpoint (default: the checkpoint's), a
# model's own mlp/attn window (default: tracing.window capped at tracing.window_max_fraction of its layers)
OPTIONAL = {"models.*.tokenizer", "models.*.window"}


def test_every_schema_key_is_used_by_a_config():
    used = OPTIONAL.union(*(config_keys(c) for c in CONFIGS.values()))
    unused = sorted(set(schema_keys()) - used)
    assert not unused, f"schema keys that neither config/config.yaml nor config/paper.yaml shows: {unused}"


def test_the_schema_fills_every_section():
    """An object section without `default: {}` would leave its keys' defaults unfilled when it is absent."""
    from snakemake.utils import validate

    cfg = {"facts": {"path": "f.json"}, "models": {"m": {"loader": "hf", "n_layers": 1}}, "tracing": {}}
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    for key, sub in schema_keys().items():
        if "default" not in sub or "*" in key:
            continue
        node: Any = cfg
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, f"`{key}` has a schema default but was not filled"
            node = node[part]
    assert cfg["speech"]["speechlm"]["steps"] == SCHEMA["properties"]["speech"]["properties"]["speechlm"][
        "properties"]["steps"]["default"]


# a default written again: `.get("key", <a literal other than None or {}>)`
REPEATED = re.compile(r"""\.get\(\s*["'][A-Za-z_]+["']\s*,\s*(?:-?\d|["']|True\b|False\b|\[[^\]])""")


def test_no_rule_repeats_a_default():
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    found = [f"{p.relative_to(ROOT)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if REPEATED.search(line)]
    assert not found, "rules read the config with defaults of their own:\n" + "\n".join(found)


# options whose default is not a config value (file names of a package, a benchmark's or a tool's own knob)
NOT_CONFIG = {
    ("convert-model", "package"), ("convert-model", "file"), ("summarize", "out"), ("plan", "directory"),
    ("build-speechlm-backbone", "threads"), ("build-speechlm", "threads"), ("token-map", "add_special_tokens"),
    ("fit-units", "no_deltas"), ("speech-figures", "n"), ("align", "device"), ("align", "dtype"),
    ("speech-tokens", "device"), ("figure prompts", "token_map"),
    ("figure prompts", "prompts"), ("figure prompts", "filters"), ("figure heatmaps", "scale_from"),
    ("compare", "traces"), ("report-tables", "note"), ("report-images", "note"),
    *(("bench-plan", k) for k in ("configfile", "profile", "facts", "shard_size", "extra_tables")),
}


def _subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix}{name} ".lstrip())
    if prefix:
        yield prefix.strip(), parser


def test_command_options_have_no_defaults_of_their_own():
    from factrace.cli import build_parser

    found = []
    for name, parser in _subcommands(build_parser()):
        for a in parser._actions:
            if not a.option_strings or a.dest == "help" or a.default in (None, False, argparse.SUPPRESS):
                continue
            if (name, a.dest) not in NOT_CONFIG:
                found.append(f"factrace {name} {a.option_strings[-1]} (default {a.default!r})")
    assert not found, "options with defaults of their own (the rules pass config values):\n" + "\n".join(found)


def _leaf_defaults() -> dict[str, set[Any]]:
    """Leaf key name -> the schema defaults of keys of that name (numbers, strings and booleans)."""
    out: dict[str, set[Any]] = {}
    for key, sub in schema_keys().items():
        d = sub.get("default")
        if isinstance(d, (int, float, str)):  # booleans are ints
            out.setdefault(key.rsplit(".", 1)[-1], set()).add(d)
    return out


def test_no_library_function_repeats_a_config_default():
    """A parameter named like a config key (`samples`, `window`, `rate`, ...) takes no default equal to the
    schema's: the caller passes the configured value."""
    import factrace

    defaults = _leaf_defaults()
    # `device` names several keys (models, ASR, MeloTTS) with different defaults, and loaders without a key of
    # their own (HuBERT, the CTC aligner) take "auto": a device is not one setting
    defaults.pop("device")
    found = []
    for mod in pkgutil.walk_packages(factrace.__path__, "factrace."):
        if mod.name.endswith(("melotts_worker", "__main__")):  # MeloTTS's own env; `python -m factrace`
            continue
        module = importlib.import_module(mod.name)
        callables = [fn for _n, fn in inspect.getmembers(module, inspect.isfunction)]
        callables += [c for _n, c in inspect.getmembers(module, inspect.isclass) if hasattr(c, "__dataclass_fields__")]
        for fn in callables:
            if fn.__module__ != module.__name__:
                continue
            for p in inspect.signature(fn).parameters.values():
                if p.name in defaults and p.default is not inspect.Parameter.empty and p.default is not None \
                        and p.default in defaults[p.name] and not isinstance(p.default, bool):
                    found.append(f"{module.__name__}.{fn.__qualname__}({p.name}={p.default!r})")
    assert not found, "library functions with a config default of their own:\n" + "\n".join(sorted(found))


def test_every_module_imports_alone():
    """No import cycle: each module of the package imports with no other module of the package loaded first."""
    import subprocess
    import sys

    code = """
import importlib, pkgutil, sys
import factrace
names = [m.name for m in pkgutil.walk_packages(factrace.__path__, "factrace.") if not m.name.endswith("__main__")]
failed = []
for name in names:
    for loaded in [k for k in sys.modules if k == "factrace" or k.startswith("factrace.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001
        failed.append(f"{name}: {type(err).__name__}: {err}")
print(len(names))
print("\\n".join(failed))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
    n, *failed = proc.stdout.strip().split("\n")
    assert int(n) > 60 and not [f for f in failed if f], failed


def test_the_command_line_starts_without_torch():
    """Every rule's job starts `factrace`: building its parser must not import torch, scipy or matplotlib (seconds
    per job); the commands import them when they run."""
    import subprocess
    import sys

    code = ("import sys; from factrace.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'scipy', 'matplotlib', 'transformers') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
