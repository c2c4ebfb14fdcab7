"""A bad config as a few lines, before any job: which file gave the key, the key's dotted path, what is wrong and
what is allowed (the nearest valid key for a misspelt one). No schema dump, no traceback.

* :func:`fill_and_validate`: the schema's defaults filled in (as Snakemake's ``validate`` does), every schema
  error as one line; raises :class:`ConfigError`.
* :func:`config_problems`: combinations that the schema accepts but that could only fail in a later job (S->T on
  a text-only model, ...): a pure function of the filled config.

``layers`` is the list of ``(label, dict)`` that were merged into the config, lowest first (the default config,
the ``--configfile`` files, ``--config``): a key path is reported with the label of the last layer that gives it.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from factrace.core.contracts import ContractError

Layers = Sequence[tuple[str, Mapping[str, Any]]]
MAX_LINES = 6  # errors shown; the rest are counted


class ConfigError(ContractError):
    """The config is invalid; the message is short and names the file and the key."""


# ------------------------------------------------------------------------------------------ where a key comes from
def has_key(cfg: Any, path: Sequence[str]) -> bool:
    for key in path:
        if not isinstance(cfg, Mapping) or key not in cfg:
            return False
        cfg = cfg[key]
    return True


def source_of(path: Sequence[str], layers: Layers, replaced: Sequence[str] = ("models",)) -> str:
    """The label of the last layer that gives ``path`` (or its longest given prefix); the default's otherwise. A
    top-level key in ``replaced`` (factrace.core.config.REPLACED_WHOLE) comes whole from the last file that gives it."""
    if path and path[0] in replaced:
        files = [i for i, (label, layer) in enumerate(layers) if label != "--config" and has_key(layer, path[:1])]
        layers = layers[files[-1]:] if files else layers
    for n in range(len(path), 0, -1):
        for label, layer in reversed(layers):
            if has_key(layer, path[:n]):
                return label
    return layers[0][0] if layers else "config"


def dotted(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


# --------------------------------------------------------------------------------------------- schema validation
def _validator(schema: dict[str, Any]):
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, subschema):  # Snakemake's `validate(set_default=True)`
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def _allowed_keys(err) -> list[str]:
    return list(err.schema.get("properties", {}))


def _type_name(t: Any) -> str:
    names = {"integer": "an integer", "number": "a number", "string": "a string", "boolean": "true or false",
             "array": "a list", "object": "a mapping", "null": "null"}
    return " or ".join(names.get(x, str(x)) for x in (t if isinstance(t, list) else [t]))


def _describe(err) -> list[tuple[list[str], str]]:
    """(key path, what is wrong) for one jsonschema error; an unknown key gives one line per key."""
    path = [str(p) for p in err.absolute_path]
    where, v = dotted(path), err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = _allowed_keys(err)
        out = []
        for key in sorted(set(err.instance) - set(allowed)):
            near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = (f"did you mean `{dotted([*path, near[0]])}`?" if near
                    else f"the keys of `{where}` are: {', '.join(allowed)}" if path
                    else f"the top-level keys are: {', '.join(allowed)}")
            out.append(([*path, key], f"`{dotted([*path, key])}` is not a config key; {hint}"))
        return out
    if v == "required":
        missing = err.message.split("'")[1] if err.message.count("'") >= 2 else str(err.validator_value)
        return [([*path, missing], f"`{dotted([*path, missing])}` is required but not given")]
    got = repr(err.instance) if not isinstance(err.instance, (dict, list)) or len(repr(err.instance)) < 60 \
        else type(err.instance).__name__
    if v == "enum":
        what = f"allowed: {', '.join(map(str, err.validator_value))}"
    elif v == "type":
        what = f"expected {_type_name(err.validator_value)}"
    elif v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        what = f"must be {op} {err.validator_value}"
    elif v in ("minItems", "maxItems", "minProperties"):
        what = f"needs {'at least' if v != 'maxItems' else 'at most'} {err.validator_value} item(s)"
    elif v == "uniqueItems":
        what = "has repeated items"
    elif v == "pattern":
        what = f"must match {err.validator_value}"
    else:
        what = err.message if len(err.message) < 160 else err.message[:157] + "..."
    return [(path, f"`{where}` is {got}: {what}")]


def fill_and_validate(config: dict[str, Any], schema: dict[str, Any], layers: Layers = ()) -> dict[str, Any]:
    """Fill ``config`` in place with the schema's defaults and validate it; :class:`ConfigError` lists every
    error as ``<file>: <key path> ...``."""
    errors = sorted(_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    lines = [(p, msg) for err in errors for p, msg in _describe(err)]
    if lines:
        raise ConfigError(format_problems("invalid config", lines, layers, config))
    return config


# --------------------------------------------------------------------------------- combinations that fail later
SPEECH_LOADERS = {"spiritlm"}  # the loaders that read [Speech][Hu..] tokens (factrace/models/spiritlm.py)


def config_problems(config: Mapping[str, Any]) -> list[tuple[list[str], str]]:
    """(key path, message) of each combination the schema allows that a later job could only fail on (or trace
    nonsense with); ``config`` is filled with the schema's defaults. Pure: reads nothing else."""
    out: list[tuple[list[str], str]] = []
    models, speech = config["models"], config["speech"]
    speechlm = speech["speechlm"]
    for name, m in models.items():
        if "s2t" not in m["modalities"]:
            continue
        where = ["models", name, "modalities"]
        if m["loader"] not in SPEECH_LOADERS:
            out.append((where, (f"model {name!r} cannot read speech (`loader: {m['loader']}` is text only; speech "
                               f"needs loader: {', '.join(sorted(SPEECH_LOADERS))}): remove s2t from its "
                               "modalities")))
        elif m.get("convert") == "speechlm-backbone":
            out.append((where, (f"model {name!r} is the offline speech LM's text-only backbone (convert: "
                               "speechlm-backbone): remove s2t from its modalities")))
        if not speech["enabled"]:
            out.append((["speech", "enabled"], (f"`speech.enabled` is false, but model {name!r} traces s2t (speech "
                                               f"input): set it to true, or remove s2t from `models.{name}.modalities`")))
        if m.get("convert") == "speechlm-offline" and speech["units"]["backend"] != "mfcc-kmeans":
            out.append((["speech", "units", "backend"],
                        (f"the offline speech LM {name!r} is trained on mfcc-kmeans units, but "
                        f"`speech.units.backend` is {speech['units']['backend']}: its S->T input would be "
                        "units it never saw (use mfcc-kmeans, or a SpiritLM checkpoint)")))
    if any(m.get("convert") == "speechlm-offline" for m in models.values()):
        backbone = speechlm["backbone"]
        if models.get(backbone, {}).get("convert") != "speechlm-backbone":
            built = [n for n, m in models.items() if m.get("convert") == "speechlm-backbone"]
            out.append((["speech", "speechlm", "backbone"],
                        (f"`speech.speechlm.backbone` is {backbone!r}, not a model with convert: speechlm-backbone"
                        f" ({'models with it: ' + ', '.join(built) if built else 'none is configured'})")))
    for name, m in models.items():
        if m.get("convert") == "speechlm-backbone":
            for key in ("hidden", "intermediate"):
                if key not in m:
                    out.append((["models", name, key], (f"model {name!r} (convert: speechlm-backbone) needs "
                                                       f"`models.{name}.{key}`: the size of the backbone to build")))
    return out


def check_config(config: Mapping[str, Any], layers: Layers = ()) -> None:
    """:class:`ConfigError` naming every impossible combination of :func:`config_problems`."""
    problems = config_problems(config)
    if problems:
        raise ConfigError(format_problems("impossible config", problems, layers, config))


# ---------------------------------------------------------------------------------------------------- the message
def _replaced_models_hint(path: Sequence[str], layers: Layers) -> str | None:
    """A model entry given by a later file replaces the default's models whole (factrace.core.config.merge_configs)."""
    if len(path) < 2 or path[0] != "models" or len(layers) < 2:
        return None
    default_label, default = layers[0]
    if has_key(default, path[:2]) and source_of(path[:2], layers) != default_label:
        return (f"note: `models:` from a config file replaces {default_label}'s models whole; copy the entry of "
                f"`{path[1]}` from {default_label} into it, then change what differs")
    return None


def format_problems(title: str, problems: Sequence[tuple[Sequence[str], str]], layers: Layers,
                    config: Mapping[str, Any] | None = None) -> str:
    files = [label for label, _ in layers]
    head = f"{title} ({' < '.join(files)}):" if files else f"{title}:"
    lines, hints = [head], []
    for path, msg in problems[:MAX_LINES]:
        lines.append(f"  {source_of(list(path), layers) if layers else 'config'}: {msg}")
        hint = _replaced_models_hint(list(path), layers) if "is required" in msg else None
        if hint and hint not in hints:
            hints.append(hint)
    if len(problems) > MAX_LINES:
        lines.append(f"  ... and {len(problems) - MAX_LINES} more")
    return "\n".join(lines + [f"  {h}" for h in hints])
