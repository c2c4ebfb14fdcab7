"""`snakemake --lint` on a copy of the workflow with the offline config reports no problems.

Two kinds of lint are known to be open (see the reliability report): helper functions living beside rules in
filter/speech/trace/compare.smk ("Mixed rules and functions", fixed by moving them into common.smk) and rules
without a conda environment whose packages no env file yet lists (convert_model: gguf; wer_summary and
speech_figures: jiwer/matplotlib beside the speech stack; ...). While only those remain the test is an expected
failure that lists them; any other lint fails it, and it passes once the list is empty.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from test_corruption import copy_workflow, snakemake

KNOWN_OPEN = ("Mixed rules and functions in same snakefile.", "Specify a conda environment or container for each rule.")


def _lints(text: str) -> list[tuple[str, str]]:
    """(where, title) of every lint in `snakemake --lint` text output."""
    out, where = [], ""
    for line in text.splitlines():
        m = re.match(r"Lints for (.+):$", line)
        if m:
            where = re.sub(r"^snakefile .*/", "snakefile ", re.sub(r" \(line \d+, .*\)", "", m.group(1)))
            continue
        m = re.match(r"    \* (.+?):?$", line)
        if m and where:
            out.append((where, m.group(1).rstrip(":")))
    return out


def test_snakemake_lint_is_clean(tmp_path):
    if shutil.which("snakemake") is None and not Path(sys.executable).with_name("snakemake").exists():
        pytest.skip("snakemake is not on PATH")
    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(wd, "--lint", "--configfile", "config/config.yaml")
    text = proc.stdout + proc.stderr
    assert "Error" not in text.split("Lints for")[0], text[-3000:]  # the workflow itself parses
    lints = _lints(text)
    if proc.returncode == 0 and "Lints for" not in text:
        return
    assert lints, f"snakemake --lint failed without lints:\n{text[-3000:]}"
    other = [lint for lint in lints if lint[1].rstrip(".") + "." not in KNOWN_OPEN]
    assert not other, "new lint(s):\n" + "\n".join(f"{w}: {t}" for w, t in other)
    pytest.xfail("known open lints: " + "; ".join(f"{w}: {t}" for w, t in lints))
