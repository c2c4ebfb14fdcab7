"""The workflow's config as its rules see it, for Snakemake (Snakefile, `common.smk`) and for the commands that run
outside Snakemake (`factrace plan`, `estimate`, `fetch-checkpoints`): the default `config/config.yaml`, the
`--configfile` files merged over it (:func:`merge_configs`), the schema's defaults filled in. The schema
(`workflow/schemas/config.schema.yaml`) is the one source of defaults; library code indexes the filled config."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"
DEFAULT_CONFIGFILE = Path("config/config.yaml")  # relative to the working directory, as Snakemake's `configfile:`

# Top-level mappings that a config file replaces whole instead of merging into: `models` is a set of named models,
# and a file that names its models (config/paper.yaml: Llama-2 and SpiritLM on a cluster) means those models,
# not those plus the offline default's three. Each of its entries is then filled by the schema's defaults only.
REPLACED_WHOLE = frozenset({"models"})


def merge_configs(default: Mapping[str, Any], override: Mapping[str, Any],
                  replace: Iterable[str] = REPLACED_WHOLE) -> dict[str, Any]:
    """``override`` merged over ``default``, key by key, as Snakemake merges config files: mappings are merged
    recursively, lists and scalars (null too) replaced; a top-level key in ``replace`` (`models`) is replaced
    whole. Pure: neither argument is changed, nothing of theirs is shared with the result."""
    replace = frozenset(replace)
    out = copy.deepcopy(dict(default))
    for key, value in override.items():
        if key not in replace and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_configs(out[key], value, replace=())
        else:
            out[key] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    """A deep copy with every mapping a dict (``--config`` arrives as an immutable map)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def layered_config(configfiles: Iterable[str | Path] = (), cli: Mapping[str, Any] | None = None,
                   default: str | Path | None = DEFAULT_CONFIGFILE) -> tuple[dict[str, Any], list, list[str]]:
    """The merged config (not yet filled) and its layers, lowest first, as ``(label, dict)``: ``default`` (skipped
    when it is None, or missing while files are given, as Snakemake does), each of ``configfiles`` merged over the
    previous (:func:`merge_configs`), then ``cli`` (`--config`), merged key by key without replacing `models`:
    it wins over every file. Deprecated flat `speech.tts` keys are moved into their backend's section in each
    layer before the merge (so that a file's `speech.tts.voice` still wins over the default's espeak voice); the
    third value is their warnings."""
    from snakemake.common.configfile import load_configfile

    files = [Path(f) for f in configfiles]
    layers: list[tuple[str, dict[str, Any]]] = []
    if default is not None and (Path(default).is_file() or not files):
        layers.append((str(default), _plain(load_configfile(str(default)) or {})))
    for f in files:  # named as given, or relative to the working directory (Snakemake makes them absolute)
        label = str(f.relative_to(Path.cwd())) if f.is_absolute() and f.is_relative_to(Path.cwd()) else str(f)
        layers.append((label, _plain(load_configfile(str(f)) or {})))
    if cli:
        layers.append(("--config", _plain(cli)))
    config: dict[str, Any] = {}
    warnings: list[str] = []
    for label, layer in layers:
        layer = _plain(layer)  # a copy: `layers` keeps each file as written, for the error messages
        tts = layer.get("speech", {}).get("tts") if isinstance(layer.get("speech"), dict) else None
        if isinstance(tts, dict):
            warnings += [f"{label}: {w}" for w in migrate_flat_keys(tts)]
        config = merge_configs(config, layer, replace=() if label == "--config" else REPLACED_WHOLE)
    return config, layers, warnings


def with_defaults(config: dict[str, Any], layers: list | None = None) -> dict[str, Any]:
    """A copy of ``config`` validated against the schema, its defaults filled in (deprecated flat `speech.tts`
    keys first moved into their backend's section, as `common.smk` does); a bad config raises
    :class:`factrace.core.config_errors.ConfigError`, a few lines that name the file (``layers``) and the key."""
    config = copy.deepcopy(config)
    tts = config.get("speech", {}).get("tts") if isinstance(config.get("speech"), dict) else None
    if isinstance(tts, dict):
        migrate_flat_keys(tts)
    return fill_and_check(config, layers or [])


def fill_and_check(config: dict[str, Any], layers: list) -> dict[str, Any]:
    """``config`` filled in place with the schema's defaults, validated, then checked for combinations that could
    only fail in a later job (:mod:`factrace.core.config_errors`); raises ConfigError."""
    import yaml

    from factrace.core.config_errors import check_config, fill_and_validate

    fill_and_validate(config, yaml.safe_load(SCHEMA.read_text()), layers)
    check_config(config, layers)
    return config


def load_config(configfile: str | Path, default: str | Path | None = DEFAULT_CONFIGFILE) -> dict[str, Any]:
    """``configfile`` merged over the default config (as `snakemake --configfile` does), defaults filled in."""
    config, layers, _ = layered_config([configfile], default=default)
    return with_defaults(config, layers)


# ---- deprecated keys that are ignored: the schema still accepts them (described "deprecated, ignored"), a config
# that sets one gets one warning line naming it and saying what replaced it
_TRACE_JOBS = ("trace jobs trace every kind and layer of one shard, and GPUs and memory follow from the model's "
               "device, size and dtype (factrace/planning/resources.py)")
IGNORED_KEYS: dict[tuple[str, ...], str] = {
    ("tracing", "layer_window"): _TRACE_JOBS,
    ("resources", "trace", "gpus"): _TRACE_JOBS,
    ("resources", "trace", "mem_mb"): _TRACE_JOBS,
    ("tracing", "noise_multiplier_s2t"): (
        "the noise multiplier of every model and modality, S->T included, is now computed by rule noise_scale: the "
        "first of tracing.noise_multiplier and the tracing.noise_grid values above it under which the median "
        "p_corrupted / p_clean of the traced facts is at most tracing.noise_target_ratio; remove the key"),
}


def ignored_key_warnings(config: Mapping[str, Any]) -> list[str]:
    """One line per deprecated, ignored key (:data:`IGNORED_KEYS`) that ``config`` sets, null included (the former
    `tracing.noise_multiplier_s2t: null` meant "S->T as T->T", which the computed rule does not promise)."""
    from factrace.core.config_errors import has_key

    return [f"`{'.'.join(path)}` is deprecated and ignored: {why}" for path, why in IGNORED_KEYS.items()
            if has_key(config, path)]


# ---- deprecated flat `speech.tts` keys (each moves into its backend's section, before the defaults are filled)
#: deprecated flat key -> (backend, key in that backend's section)
FLAT_KEYS = {"voice": ("espeak", "voice"), "rate": ("espeak", "rate"), "pitch": ("espeak", "pitch"),
             "speaker": ("melotts", "speaker"), "device": ("melotts", "device")}


def migrate_flat_keys(tts: dict[str, Any]) -> list[str]:
    """Move the deprecated flat keys of ``speech.tts`` (as the user wrote it) into their backend's section, in
    place, unless that section sets the key already; returns the warnings (the caller shows them)."""
    warnings = []
    for flat, (owner, key) in FLAT_KEYS.items():
        if flat not in tts:
            continue
        section = tts.setdefault(owner, {})
        if key in section:
            warnings.append(f"`speech.tts.{flat}` is deprecated and ignored: `speech.tts.{owner}.{key}` is set")
        else:
            warnings.append(f"`speech.tts.{flat}` is deprecated: use `speech.tts.{owner}.{key}`")
            section[key] = tts[flat]
    return warnings
