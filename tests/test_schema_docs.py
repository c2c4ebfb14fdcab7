"""Every setting of the config schema says what it does (issue 24): a non-empty `description` on each property,
on each schema that names keys freely (`additionalProperties`, `patternProperties`, e.g. `models.<name>`), at any
depth, including properties inside `items`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _has_description(node: Any) -> bool:
    return isinstance(node, dict) and isinstance(node.get("description"), str) and bool(node["description"].strip())


def settings(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted path, schema) of every setting below ``node``: its properties, its free-named keys (`<name>`,
    `<pattern>`) and what the items of an array hold (`path[]`, checked only through their own properties)."""
    if not isinstance(node, dict):
        return []
    out: list[tuple[str, Any]] = []
    for key, sub in (node.get("properties") or {}).items():
        here = f"{path}.{key}" if path else key
        out.append((here, sub))
        out += settings(sub, here)
    for pattern, sub in (node.get("patternProperties") or {}).items():
        here = f"{path}.<{pattern}>"
        out.append((here, sub))
        out += settings(sub, here)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        here = f"{path}.<name>" if path else "<name>"
        out.append((here, extra))
        out += settings(extra, here)
    items = node.get("items")
    for sub in items if isinstance(items, list) else [items]:
        out += settings(sub, f"{path}[]")
    return out


def undocumented(schema: dict[str, Any]) -> list[str]:
    return [path for path, sub in settings(schema) if not _has_description(sub)]


def test_every_setting_has_a_description():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert _has_description(schema), "the schema itself has no description"
    missing = undocumented(schema)
    assert not missing, f"{SCHEMA_PATH.name}: settings without a description: {', '.join(missing)}"


def test_the_walk_finds_nested_settings():
    """The walk reaches properties, free-named keys, pattern keys and array items, and names what lacks one."""
    schema = {
        "description": "root",
        "properties": {
            "a": {"description": "a", "type": "object", "properties": {"b": {"type": "integer"}}},
            "m": {"description": "m", "additionalProperties": {"properties": {"c": {"description": " "}}}},
            "p": {"description": "p", "patternProperties": {"^x": {"description": "x"}}},
            "l": {"description": "l", "type": "array", "items": {"properties": {"d": {}}}},
        },
    }
    assert undocumented(schema) == ["a.b", "m.<name>", "m.<name>.c", "l[].d"]
    paths = [p for p, _ in settings(schema)]
    assert "p.<^x>" in paths
