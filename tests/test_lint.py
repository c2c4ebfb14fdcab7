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


@pytest.mark.parametrize("configfile", [".test/config/config.yaml", "config/config.yaml", "config/paper.yaml"])
def test_every_command_line_of_the_rules_parses(workflow_copy: Path, configfile: str):
    """The `factrace ...` lines a dry run prints (every job of the config) parse with the CLI's parser: a required
    option that a rule does not pass (config values have no CLI defaults) fails here, not in a job."""
    import shlex

    from factrace.cli import build_parser

    proc = snakemake(workflow_copy, "-n", "-p", "--forceall", "--configfile", configfile, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    parser, seen, parsed = build_parser(), set(), []
    for line in proc.stdout.splitlines():
        command = line.split("Shell command: ", 1)[-1].strip()
        if not command.startswith("factrace "):
            continue
        words = shlex.split(command.split(" 2> ")[0])
        try:
            args = parser.parse_args(words[1:])
        except SystemExit as err:
            raise AssertionError(f"does not parse: {line.strip()}") from err
        seen.add(args.command)
        parsed.append(args)
    assert {"shard", "filter", "noise-scale", "trace", "aie", "compare", "qc"} <= seen, seen
    caps = {(a.model, a.max_facts) for a in parsed if a.command == "trace"}
    qc = [a for a in parsed if a.command == "qc"]
    if configfile == "config/config.yaml":  # issue 22: the offline default traces every kept fact of every model
        assert caps == {("smollm2", None), ("speechlm", None), ("speechlm_backbone", None)}, caps
        assert not qc[0].max_facts_per_shard
    if configfile == ".test/config/config.yaml":  # tracing.max_facts_per_shard: 4 reaches every trace job and qc
        assert {cap for _, cap in caps} == {4} and len(caps) > 1, caps
        assert sorted(qc[0].max_facts_per_shard) == sorted(f"{m}=4" for m, _ in caps)
