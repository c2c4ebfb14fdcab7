"""The workflow's config as its rules see it, for the commands that run outside Snakemake (`factrace plan`,
`estimate`, `fetch-checkpoints`): the YAML file with the schema's defaults filled in. The schema
(`workflow/schemas/config.schema.yaml`) is the one source of defaults; library code indexes the filled config."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def with_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` validated against the schema, its defaults filled in (deprecated flat `speech.tts`
    keys first moved into their backend's section, as `common.smk` does)."""
    from snakemake.utils import validate

    from factrace.speech.tts.params import migrate_flat_keys

    config = copy.deepcopy(config)
    tts = config.get("speech", {}).get("tts")
    if isinstance(tts, dict):
        migrate_flat_keys(tts)
    validate(config, str(SCHEMA), set_default=True)
    return config


def load_config(configfile: str | Path) -> dict[str, Any]:
    """The config file ``configfile`` with the schema's defaults filled in."""
    import yaml

    return with_defaults(yaml.safe_load(Path(configfile).read_text()))
