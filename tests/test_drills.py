"""Fault drills on the session's tiny run (issue 11; tests/tiny_run.py): what happens when things go wrong.

The run's `results:` lies under a directory named `a b;touch INJECTED;c` (a space and `;`); it was started with
`.venv/bin/snakemake` by its absolute path and a PATH without the venv, under umask 022, on a facts file with two bad
rows. The drills reuse it, in order: modes, provenance, skipped rows, a dry run with a damaged table, every kind of
table deleted (planned for rebuild), a truncated table (named with its rebuilding command, then rebuilt), a trace
job killed with SIGKILL under other settings and under the same settings (no mixed parts; finished facts
resumed), and a final run that must give the first run's tables back (the other tests read the run after them).

Run alone: `python -m pytest -m drill tests/test_drills.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from tiny_run import (
    CLEAN_PATH,
    CONFIG,
    CONFIG_SAMPLES3,
    FACTS,
    RESULTS,
    TinyRun,
    clean_env,
    run_snakemake,
    snakemake_argv,
    umask022,
)

pytestmark = [pytest.mark.slow, pytest.mark.drill]


def snakemake(wd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_snakemake(wd, *args, check=check)


def tables(res: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet table under results (trace parts and the models' own files aside), by relative path."""
    out = {}
    for p in sorted(res.rglob("*.parquet")):
        rel = p.relative_to(res).as_posix()
        if rel.startswith("models/") or ".parts" in rel:
            continue
        out[rel] = pd.read_parquet(p)
    return out


def tree_digest(root: Path) -> dict[str, tuple[int, str, int]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(root).as_posix()] = (st.st_size, hashlib.sha256(p.read_bytes()).hexdigest(),
                                                   st.st_mtime_ns)
    return out


class Drill:
    def __init__(self, wd: Path, first: subprocess.CompletedProcess):
        self.wd = wd
        self.res = wd / RESULTS
        self.first = first
        self.tables = tables(self.res)

    def path(self, rel: str) -> Path:
        return self.res / rel


@pytest.fixture(scope="module")
def drill(tiny_run: TinyRun) -> Drill:
    assert shutil.which("factrace", path=CLEAN_PATH) is None
    return Drill(tiny_run.wd, tiny_run.first)


# ------------------------------------------------------------------------------------ the first run itself
def test_run_without_venv_on_path_and_nothing_injected(drill: Drill):
    """(11) every interpolation is quoted: `touch INJECTED` in the results path never ran; (12) `factrace` in
    the shell lines is the package of the running Snakemake (PATH has no venv)."""
    assert not list(drill.wd.rglob("INJECTED")), "a path from the config was executed by the shell"
    assert (drill.res / "aie" / "smollm2" / "t2t.parquet").exists()
    assert "Nothing to be done" in snakemake(drill.wd, "-n").stdout


def test_output_modes_follow_the_umask(drill: Drill):
    """(6) files 0644 and directories 0755 under umask 022 (mkstemp gave 0600)."""
    bad = []
    for p in drill.res.rglob("*"):
        mode = stat.S_IMODE(p.stat().st_mode)
        if ".snakemake" in p.parts:
            continue
        if (p.is_file() and mode != 0o644) or (p.is_dir() and mode != 0o755):
            bad.append(f"{oct(mode)} {p.relative_to(drill.res)}")
    assert not bad, bad[:20]


def test_bad_fact_rows_are_skipped_and_counted(drill: Drill):
    """(9, 10) each bad row is a skip row (file, row, known_id, reason); the other facts are traced; the run
    ends by saying how many were skipped."""
    skipped = pd.read_parquet(drill.path("prompts/skipped_facts.parquet"))
    assert skipped[["row", "known_id"]].values.tolist() == [[3, 8], [4, 9]]
    assert "has no '{}' placeholder" in skipped["reason"].iloc[0]
    assert skipped["reason"].iloc[1].startswith("field 'attribute' must be a string, got int 42")
    assert set(skipped["file"]) == {"facts.json"}
    prompts = pd.concat(pd.read_parquet(p) for p in drill.res.glob("prompts/shard-*.parquet"))
    assert sorted(prompts["known_id"]) == sorted(f["known_id"] for f in FACTS)
    assert "2 problem(s) in facts.json" in drill.first.stderr


def test_every_table_carries_provenance(drill: Drill):
    """(5) every Parquet table the workflow writes has provenance; every contract is covered; merged trace
    tables carry the settings they were traced with."""
    from factrace.core import io
    from factrace.core.contracts import CONTRACTS

    seen = set()
    for rel in drill.tables:
        prov = io.read_provenance(drill.path(rel))
        assert prov.get("stage") and prov.get("package_version") and "config_hash" in prov, (rel, prov)
        assert prov.get("libraries"), rel
        seen.add(prov.get("contract"))
        if prov.get("contract") in ("filter", "trace"):
            assert prov.get("model_id") and prov.get("weights_sha256"), (rel, prov)
        if rel.startswith("trace/"):
            assert prov["extra"]["params"]["samples"] == 2, (rel, prov)
    assert set(CONTRACTS) <= seen, set(CONTRACTS) - seen


# ------------------------------------------------------------------------------------ damaged and deleted tables
ASR = "speech/asr/shard-0001.parquet"


def test_dry_run_changes_nothing_even_with_a_damaged_table(drill: Drill):
    """(3) parsing never writes or deletes: `snakemake -n` leaves results/ byte-identical (it removed
    unreadable tables before)."""
    target = drill.path(ASR)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])  # truncated (its mtime is now newer than its consumers')
    before = tree_digest(drill.res)
    snakemake(drill.wd, "-n")
    snakemake(drill.wd, "--lint", check=False)
    assert tree_digest(drill.res) == before


DELETED_KINDS = [
    "prompts/shard-0001.parquet", "prompts/skipped_facts.parquet", "filter/smollm2/t2t/shard-0000.parquet",
    "noise/speechlm/s2t.json", "trace/speechlm/t2t/mlp/shard-0001.parquet", "speech/audio/shard-0000.parquet",
    "speech/audio/shard-0000.onsets.parquet", "speech/alignment/shard-0001.parquet",
    "speech/alignment-pocketsphinx/shard-0000.parquet", "speech/tokens/shard-0000.parquet",
    "speech/token_map/speechlm/shard-0001.parquet", "speech/units/mfcc_kmeans.npz", "gap/speechlm.parquet",
    "aie/speechlm/s2t.parquet",
]


def test_every_kind_of_deleted_table_is_planned_for_rebuild(drill: Drill):
    """(2) a deleted intermediate is rebuilt by the next run (Snakemake alone skips it while what depends on it
    exists). Checked with a dry run for each kind at once; the files are then put back untouched."""
    aside = drill.wd / "aside"
    moved = []
    try:
        for i, rel in enumerate(DELETED_KINDS):
            dest = aside / str(i)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(drill.path(rel), dest)
            moved.append((rel, dest))
        out = snakemake(drill.wd, "-n").stdout
    finally:
        for rel, dest in moved:
            os.replace(dest, drill.path(rel))
    missing = "\n".join(line for line in out.splitlines() if "Missing output files" in line)
    for rel in DELETED_KINDS:
        assert str(Path(RESULTS) / rel) in missing, f"{rel} would not be rebuilt:\n{out[-3000:]}"


REBUILT = [ASR, "speech/alignment/shard-0001.parquet", "speech/token_map/speechlm/shard-0001.parquet",
           "prompts/skipped_facts.parquet", "noise/speechlm/s2t.json", "gap/speechlm.parquet"]


def test_truncated_table_is_named_with_its_rebuilding_command_then_rebuilt(drill: Drill):
    """(2) the jobs that read a truncated table fail naming it and the command that rebuilds it; following the
    command rebuilds it (and deleted tables of other kinds) with the same content."""
    proc = snakemake(drill.wd, "--cores", "2", check=False)
    assert proc.returncode != 0
    logs = "\n".join(p.read_text(errors="replace") for p in (drill.res / "logs").rglob("*.log"))
    target = drill.path(ASR)
    assert f"{target}: not a readable Parquet file" in logs or f"{Path(RESULTS) / ASR}: not a readable" in logs
    assert "rm -- " in logs and "snakemake" in logs
    noise = json.loads(drill.path("noise/speechlm/s2t.json").read_text())
    for rel in REBUILT:
        drill.path(rel).unlink()  # the command's `rm`, and one table of other kinds
    snakemake(drill.wd, "--cores", "2")
    for rel in REBUILT:
        if rel.endswith(".json"):
            assert json.loads(drill.path(rel).read_text()) == noise
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(drill.path(rel)), drill.tables[rel], check_exact=True)


# ------------------------------------------------------------------------------------ killed trace jobs
def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_trace_job(drill: Drill, target: str, parts: Path, configfile: str = CONFIG) -> None:
    """Start the trace job of ``target``; SIGKILL its `factrace trace` process once one fact is finished."""
    argv = snakemake_argv(target, "--cores", "1", configfile=configfile)
    proc = subprocess.Popen(argv, cwd=drill.wd, env=clean_env(), preexec_fn=umask022,  # noqa: PLW1509
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.is_dir() and any(parts.glob("*.parquet")):
            for pid in _descendants(proc.pid):
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"factrace" in cmd and b"trace" in cmd:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            if killed:
                break
        time.sleep(0.01)
    proc.wait(timeout=600)
    assert killed, "the trace job ended before it could be killed"
    assert proc.returncode != 0


def _traced_window(drill: Drill) -> tuple[str, int]:
    """The first kind's trace table of shard 0000 with at least two facts (so that the kill lands between them).

    One trace job per (model, modality, shard) traces every kind in turn, the first kind first."""
    for model, mod in (("smollm2", "t2t"), ("speechlm", "t2t"), ("speechlm", "s2t")):
        rel = f"trace/{model}/{mod}/hidden/shard-0000.parquet"
        n = drill.tables[rel]["known_id"].nunique()
        if n >= 2:
            return rel, n
    raise AssertionError("no trace table of shard 0000 has two facts: the tiny facts changed?")


def test_killed_trace_job_under_other_samples_does_not_mix_parts(drill: Drill):
    """(1) a job killed under `tracing.samples: 3`, rerun under the config's 2, discards the old parts."""
    rel, _ = _traced_window(drill)
    out = drill.path(rel)
    parts = out.with_name(out.name + ".parts")
    out.unlink()
    _kill_trace_job(drill, str(Path(RESULTS) / rel), parts, configfile=CONFIG_SAMPLES3)
    assert any(parts.glob("*.parquet")) and not out.exists()
    snakemake(drill.wd, str(Path(RESULTS) / rel), "--cores", "1")
    got = pd.read_parquet(out)
    assert set(got["samples"]) == {2}
    pd.testing.assert_frame_equal(got, drill.tables[rel], check_exact=True)
    assert not parts.exists()


def test_killed_trace_job_resumes_its_finished_facts(drill: Drill):
    """kill -9 mid-shard, rerun: the finished facts are read back, not recomputed; the table is identical."""
    rel, n = _traced_window(drill)
    out = drill.path(rel)
    parts = out.with_name(out.name + ".parts")
    out.unlink()
    _kill_trace_job(drill, str(Path(RESULTS) / rel), parts)
    finished = len(list(parts.glob("known_*.parquet")))
    assert 1 <= finished < n
    snakemake(drill.wd, str(Path(RESULTS) / rel), "--cores", "1")
    model, mod, _kind, shard = rel[len("trace/"):].split("/")
    log = drill.path(f"logs/trace/{model}/{mod}/{shard[len('shard-'):-len('.parquet')]}.log").read_text()
    assert log.count("resumed from") == finished, log[-3000:]
    assert log.count("p_clean=") == n - finished
    pd.testing.assert_frame_equal(pd.read_parquet(out), drill.tables[rel], check_exact=True)


def test_after_all_drills_the_tables_are_those_of_the_first_run(drill: Drill):
    """The final run rebuilds what the drills touched; every table equals the first run's."""
    snakemake(drill.wd, "--cores", "2")
    assert "Nothing to be done" in snakemake(drill.wd, "-n").stdout
    now = tables(drill.res)
    assert sorted(now) == sorted(drill.tables)
    for rel, df in drill.tables.items():
        pd.testing.assert_frame_equal(now[rel], df, check_exact=True, obj=rel)
    assert not list(drill.wd.rglob("INJECTED"))
