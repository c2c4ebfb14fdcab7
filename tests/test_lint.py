"""`snakemake --lint` reports nothing, on the default config and on the paper config (with placeholder
checkpoints, as the paper dry run has them), and no two rules declare the same output pattern."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_corruption import copy_workflow, snakemake
from test_paper_config import place_checkpoint_placeholders

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    wd = copy_workflow(tmp_path_factory.mktemp("lint"))
    place_checkpoint_placeholders(wd)
    return wd


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/paper.yaml"])
def test_snakemake_lint_is_clean(workflow_copy: Path, configfile: str):
    proc = snakemake(workflow_copy, "--lint", "--configfile", configfile, timeout=900)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Lints for" not in text, text[-3000:]


def _outputs(rule_body: str) -> list[str]:
    """The output patterns of one rule's text (the f-strings between `output:` and the next directive)."""
    m = re.search(r"\n\s+output:\n(.*?)\n\s+(?:params|log|resources|wildcard_constraints|shell|run|threads|"
                  r"priority|conda|input|script):", rule_body, re.DOTALL)
    return re.findall(r'f"(\{R\}/[^"]+)"', m.group(1)) if m else []


def test_no_two_rules_declare_the_same_output():
    seen: dict[str, str] = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for name, body in re.findall(r"\n\s*rule (\w+):\n(.*?)(?=\n\s*rule \w+:|\Z)", text, re.DOTALL):
            for pattern in _outputs(body):
                key = re.sub(r"\{\{(\w+)[^}]*\}\}", r"{\1}", pattern)
                assert key not in seen, f"{key}: declared by rules {seen[key]} and {name}"
                seen[key] = name
    assert len(seen) > 20  # the parser found the rules' outputs
