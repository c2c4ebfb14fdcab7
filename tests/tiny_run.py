"""The one local run of the tiny config that the drills, the workflow tests and the Slurm comparison share.

`.test/config/config.yaml` on its facts plus two bad rows, with `results:` under a directory named
`a b;touch INJECTED;c` (a space and `;`), started with `.venv/bin/snakemake` by its absolute path and a PATH
without the venv (so `factrace` is not on PATH), under umask 022. The drills (tests/test_drills.py) damage and
rebuild it and end by checking that every table is the first run's again; the workflow tests read it; the Slurm
test compares a Slurm run of the same facts with it. A full run costs minutes: one for all of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WEIRD = "a b;touch INJECTED;c"  # unquoted, a shell line would run `touch INJECTED`
RESULTS = f"{WEIRD}/results"
FACTS = json.loads((REPO / ".test" / "data" / "facts.json").read_text())
BAD_ROWS = [  # one bad row of each class: skipped with its reason, the other facts go on
    {"known_id": 8, "subject": "Spain", "attribute": "Madrid", "template": "The capital of Spain is",
     "prediction": "", "prompt": "The capital of Spain is", "relation_id": "P36"},  # template without {}
    {"known_id": 9, "subject": "Japan", "attribute": 42, "template": "The capital of {} is", "prediction": "",
     "prompt": "The capital of Japan is", "relation_id": "P36"},  # non-string attribute
]
FACTS_WITH_BAD_ROWS = FACTS + BAD_ROWS
CLEAN_PATH = "/usr/bin:/bin"  # no venv: `factrace` must not come from PATH
CONFIG = "config/tiny.yaml"
CONFIG_SAMPLES3 = "config/tiny-samples3.yaml"  # the same with tracing.samples: 3 (a drill's other settings)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV",)}
    env.update(PATH=CLEAN_PATH, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return env


def umask022() -> None:
    os.umask(0o022)


def snakemake_argv(*args: str, configfile: str = CONFIG) -> list[str]:
    exe = Path(sys.executable).with_name("snakemake")  # .venv/bin/snakemake, by its absolute path
    # --configfile takes several files: it goes last, so that a target given in ``args`` stays a target
    return [str(exe), *args, "--configfile", configfile]


def run_snakemake(wd: Path, *args: str, check: bool = True, configfile: str = CONFIG) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_argv(*args, configfile=configfile), cwd=wd, capture_output=True, text=True,
                          env=clean_env(), preexec_fn=umask022, timeout=1800, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def write_tiny_config(wd: Path, results: str = RESULTS) -> None:
    """config/tiny.yaml (the tiny config on facts.json, `results:` as given) and its samples-3 twin."""
    cfg = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    cfg["facts"]["path"] = "facts.json"
    cfg["results"] = results
    (wd / CONFIG).write_text(yaml.safe_dump(cfg, sort_keys=False))
    cfg["tracing"]["samples"] = 3
    (wd / CONFIG_SAMPLES3).write_text(yaml.safe_dump(cfg, sort_keys=False))


@dataclass
class TinyRun:
    wd: Path
    first: subprocess.CompletedProcess  # the first run's output

    @property
    def res(self) -> Path:
        return self.wd / RESULTS


def tiny_run(wd: Path) -> TinyRun:
    from test_workflow import copy_workflow

    copy_workflow(wd)
    (wd / "facts.json").write_text(json.dumps(FACTS_WITH_BAD_ROWS, indent=1))
    write_tiny_config(wd)
    return TinyRun(wd, run_snakemake(wd, "--cores", "2"))
