"""The cluster profiles: their merged settings, what each job requests, and the tiny config through a real Slurm.

Without a cluster (any machine): the settings that `--profile profiles/slurm` / `profiles/alvis` give Snakemake
are the cluster profile's (no workflow profile `profiles/default` mixed in), and a dry run under profiles/alvis asks
for exactly one GPU per submitted job, with GPUs asked for in one way only.

With a one-node Slurm (`.ci/slurm-cluster up`; `make test-slurm` and `.ci/run` start it), marked `slurm`: the tiny
config (.test/config/config.yaml) runs through `snakemake --profile profiles/slurm` with the real
snakemake-executor-plugin-slurm; each job's Slurm record (scontrol) must match what the profile asks for: model rules
in the GPU partition with one GPU, all other jobs without one, light rules as local rules; the tables equal a local
run's; a second run submits nothing; a failing job is reported with its log; profiles/alvis re-makes a part of the
results on the same cluster with one GPU per job (model jobs on an A40, grouped speech and analysis jobs on a T4).
Without a cluster these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_run import FACTS_WITH_BAD_ROWS, RESULTS

REPO = Path(__file__).resolve().parents[1]
FACTS = FACTS_WITH_BAD_ROWS  # the session's local run's facts (tests/tiny_run.py): its tables are compared
PARTITIONS = {"SLURM_ACCOUNT": "factrace", "SLURM_PARTITION": "cpu", "SLURM_GPU_PARTITION": "gpu"}
# the plugin's defaults wait 40 s before the first status check; squeue: the test cluster has no accounting database
# Snakemake's own default polls every 10 s: each finished job would wait up to that long for its dependents
FAST = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2")


# ---- helpers -----------------------------------------------------------------------------------------------------
def _snakemake_exe() -> Path:
    exe = Path(sys.executable).with_name("snakemake")
    return exe if exe.exists() else Path(shutil.which("snakemake") or "snakemake")


# one Slurm run of the tiny config takes ~7 min on 2 idle cores; a machine shared with other work needs longer
RUN_TIMEOUT = int(os.environ.get("FACTRACE_SLURM_TEST_TIMEOUT", "2400"))


def snakemake(workdir: Path, *args: str, timeout: int = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    exe = _snakemake_exe()
    env = {**os.environ, **PARTITIONS, "PATH": f"{exe.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(exe), *args], cwd=workdir, capture_output=True, text=True, env=env, timeout=timeout,
                          check=False)


def workflow_copy(dest: Path, on_cuda: bool = False) -> Path:
    """The workflow and the tiny config (config/tiny.yaml, facts in facts.json) under ``dest``.

    ``on_cuda``: every model on `device: cuda`, as in paper.yaml, so the model rules ask for a GPU themselves
    (for dry runs: this machine has no CUDA)."""
    from test_workflow import copy_workflow, tiny_config

    dest.mkdir(parents=True, exist_ok=True)
    copy_workflow(dest)
    (dest / "facts.json").write_text(json.dumps(FACTS, indent=1))
    cfg_path = tiny_config(dest)
    if on_cuda:
        cfg = yaml.safe_load(cfg_path.read_text())
        for m in cfg["models"].values():
            m["device"] = "cuda"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def profile_gpu_rules(name: str) -> set[str]:
    """The rules that the profile gives a GPU (`gpu`/`gpus` > 0, a gres or a --gpus* option in slurm_extra)."""
    out = set()
    for rule, res in (profile(name).get("set-resources") or {}).items():
        if _gpus_requested(res) > 0:
            out.add(rule)
    return out


def _gpus_requested(res: dict) -> int:
    """GPUs that the resources of one job ask for, counting every way the Slurm plugin passes them on."""
    n = 0
    for key in ("gpu", "gpus"):
        if str(res.get(key, "0")).strip() not in ("", "0", "None"):
            n += int(res[key])
    n += sum(int(c) for c in re.findall(r"gpu(?::\w+)?:(\d+)", str(res.get("gres", ""))))
    n += sum(int(c) for c in re.findall(r"--gpus(?:-per-node|-per-task)?[= ](?:\w+:)?(\d+)",
                                          str(res.get("slurm_extra", ""))))
    return n


def localrules_of_workflow() -> set[str]:
    """Rule names in the `localrules:` statements of the workflow's rule files."""
    names: set[str] = set()
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        text = smk.read_text()
        # `localrules: a, b` on one line, or one name per indented line below `localrules:`
        for line, block in re.findall(r"^localrules:([ \t\w,]*)\n((?:[ \t]+\w+,?[ \t]*\n)*)", text, flags=re.MULTILINE):
            names |= set(re.findall(r"\w+", line + block))
    return names


@dataclass
class PlannedJob:
    """One job as Snakemake printed it: its rule, its resources, local or not, its group, its Slurm job id."""

    jobid: str
    rule: str
    local: bool
    group: str | None
    resources: dict[str, str] = field(default_factory=dict)
    slurm_id: str | None = None


def parse_run_log(text: str) -> dict[str, PlannedJob]:
    """Snakemake's job blocks (`rule X:` / `localrule X:`, `jobid:`, `resources:`; indented under `Group job G` for
    the members of a group job) and the plugin's `Job N has been submitted with SLURM jobid M` lines, by job id."""
    jobs: dict[str, PlannedJob] = {}
    group, cur = None, None
    for line in text.splitlines():
        m = re.search(r"Group job (\S+) \(jobs", line)
        if m:
            group = m.group(1)
            continue
        m = re.match(r"(\s*)(local)?rule (\w+):$", line)
        if m:
            cur = PlannedJob(jobid="", rule=m.group(3), local=bool(m.group(2)), group=group if m.group(1) else None)
            continue
        if cur is not None and line.strip().startswith("jobid:"):
            cur.jobid = line.split(":", 1)[1].strip()
            jobs[cur.jobid] = cur
        elif cur is not None and line.strip().startswith("resources:"):
            for item in line.split(":", 1)[1].split(", "):
                k, _, v = item.strip().partition("=")
                cur.resources[k] = v
        m = re.match(r"Job (\S+) has been submitted with SLURM jobid (\d+)", line)
        if m and m.group(1) in jobs:
            jobs[m.group(1)].slurm_id = m.group(2)
    return jobs


def submitted_groups(text: str) -> dict[str, str]:
    """Slurm job id -> group name of each group job that a Snakemake log submitted (the plugin's log directory
    `slurm_logs/group_<group>_<rules>`; the job comment is `rule_<group>_<rules>`)."""
    out = {}
    for slurm_id, logdir in re.findall(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/"
                                       r"group_(\w+)/", text):
        out[slurm_id] = logdir
    return out


def group_of(logdir: str, groups: set[str]) -> str:
    """The group whose name starts the plugin's `<group>_<rules>` name."""
    return next(g for g in sorted(groups, key=len, reverse=True) if logdir.startswith(f"{g}_"))


def submitted_ids(text: str) -> set[str]:
    """Slurm job ids of every submission in a Snakemake log (jobs and group jobs)."""
    return set(re.findall(r"submitted with SLURM jobid (\d+)", text))


def scontrol_jobs() -> dict[str, dict[str, str]]:
    """Every job slurmctld still knows (finished ones for MinJobAge), as key=value fields, by Slurm job id."""
    out = subprocess.run(["scontrol", "show", "job", "-d", "-o"], capture_output=True, text=True, check=False).stdout
    jobs = {}
    for line in out.splitlines():
        fields: dict[str, str] = {}
        for k, v in re.findall(r"(?:^|\s)([A-Za-z_:/]+)=(\S*)", line):
            fields.setdefault(k, v)
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def allocated_gpus(job: dict[str, str]) -> dict[str, int]:
    """GPU type -> count that Slurm allocated to a job (`JOB_GRES=gpu:A40:1,gpu:T4:0`), {} for none."""
    out: dict[str, int] = {}
    for typ, n in re.findall(r"gpu:(?:(\w+):)?(\d+)", job.get("JOB_GRES", "")):
        if int(n):  # a node with several GPU types lists each, with 0 for the ones not allocated
            out[typ or "any"] = out.get(typ or "any", 0) + int(n)
    return out


def comment_rule(job: dict[str, str]) -> str:
    """The rule (or group) name that the plugin writes into the job comment (`rule_<name>[_wildcards_...]`)."""
    m = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", job.get("Comment", ""))
    return m.group(1) if m else ""


def cluster_problem() -> str | None:
    """Why the Slurm tests cannot run here (None: a cluster with partitions cpu and gpu answers)."""
    for tool in ("sbatch", "squeue", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"no Slurm client ({tool}) on PATH; start the test cluster with `.ci/slurm-cluster up`"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return f"slurmctld does not answer (`scontrol ping`: {ping.stdout.strip() or ping.stderr.strip()}); " \
               "start the test cluster with `.ci/slurm-cluster up`"
    parts = subprocess.run(["sinfo", "-h", "-o", "%R %t"], capture_output=True, text=True, check=False).stdout.split()
    if not {"cpu", "gpu"} <= set(parts[::2]):
        return f"the Slurm cluster lacks the partitions cpu and gpu (sinfo: {parts}); use `.ci/slurm-cluster up`"
    return None


needs_cluster = pytest.mark.skipif(cluster_problem() is not None, reason=str(cluster_problem()))
slurm = [pytest.mark.slurm, pytest.mark.slow, needs_cluster]


# ---- the profiles, without a cluster -----------------------------------------------------------------------------
def _merged_settings(workdir: Path, *argv: str) -> dict:
    """The command-line settings that Snakemake derives from `argv` and the profiles it loads, in ``workdir``."""
    code = ("import json, sys; from snakemake.cli import parse_args; _, a = parse_args(sys.argv[1:]); "
            "print(json.dumps({k: getattr(a, k) for k in ('cores', 'latency_wait', 'executor', 'jobs', "
            "'default_resources', 'keep_going')}, default=str))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=workdir, capture_output=True, text=True,
                          env={**os.environ, **PARTITIONS}, check=True)
    return {**json.loads(proc.stdout.splitlines()[-1]), "stderr": proc.stderr}


@pytest.mark.parametrize("name", ["slurm", "alvis"])
def test_cluster_profile_settings_are_its_own(name: str, tmp_path: Path):
    """A workflow profile (profiles/default) would be loaded after --profile and override it (defect 7)."""
    from test_workflow import copy_workflow

    copy_workflow(tmp_path)
    settings = _merged_settings(tmp_path, "--profile", f"profiles/{name}", "-n")
    prof = profile(name)
    assert "workflow specific profile" not in settings["stderr"], settings["stderr"]
    assert settings["executor"] == "slurm"
    assert settings["cores"] is None, "the local profile's `cores` leaks into the cluster profile"
    assert settings["latency_wait"] == prof["latency-wait"]
    local = profile("local")
    assert settings["latency_wait"] != local["latency-wait"]


def test_local_profile_is_local():
    assert not (REPO / "profiles" / "default").exists()
    assert profile("local").get("cores") == "all" and "executor" not in profile("local")
    assert "--profile profiles/local" in (REPO / "Makefile").read_text()


def _dry_run_jobs(workdir: Path, prof: str) -> dict[str, PlannedJob]:
    proc = snakemake(workdir, "-n", "--profile", f"profiles/{prof}", "--configfile", "config/tiny.yaml",
                     timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return parse_run_log(proc.stdout + "\n" + proc.stderr)


@pytest.fixture(scope="module")
def alvis_dry(tmp_path_factory) -> dict[str, PlannedJob]:
    # the paper's model rules ask for a GPU themselves (models on CUDA): the profile must not add a second
    wd = workflow_copy(tmp_path_factory.mktemp("alvis_dry"), on_cuda=True)
    return _dry_run_jobs(wd, "alvis")


def test_alvis_asks_for_one_gpu_per_job_one_way(alvis_dry: dict[str, PlannedJob]):
    local = localrules_of_workflow() | {"all"}
    submitted = [j for j in alvis_dry.values() if j.rule not in local]
    assert submitted
    for job in submitted:
        res = job.resources
        assert _gpus_requested(res) == 1, f"{job.rule}: {res}"
        ways = [str(res.get(k, "0")) not in ("0", "") for k in ("gpu", "gpus")] + ["gpu" in res.get("gres", "")]
        ways.append("--gpu" in res.get("slurm_extra", ""))
        assert sum(ways) == 1, f"{job.rule} asks for its GPU in more than one way: {res}"


def test_alvis_cpu_rules_are_grouped_or_local(alvis_dry: dict[str, PlannedJob]):
    """No CPU job holds a GPU of its own: a rule that the generic profile runs without a GPU is, under
    profiles/alvis, a local rule or part of a group job."""
    model_rules = profile_gpu_rules("slurm")
    local = localrules_of_workflow() | {"all"}
    for job in alvis_dry.values():
        if job.rule in local or job.rule in model_rules:
            continue
        assert job.group, f"{job.rule} would be a job of its own holding a GPU on Alvis"
    groups = {j.group for j in alvis_dry.values() if j.group}
    assert groups <= set(profile("alvis").get("group-components", {}))


# ---- the tiny config through a real Slurm -------------------------------------------------------------------------
@dataclass
class SlurmRun:
    workdir: Path
    log: str
    jobs: dict[str, PlannedJob]
    seconds: float


def _run_cluster(workdir: Path, prof: str, *extra: str) -> SlurmRun:
    t0 = time.monotonic()
    proc = snakemake(workdir, "--profile", f"profiles/{prof}", "--configfile", "config/tiny.yaml", *FAST, *extra)
    text = proc.stdout + "\n" + proc.stderr
    assert proc.returncode == 0, f"snakemake --profile profiles/{prof} failed:\n{text[-8000:]}"
    return SlurmRun(workdir, text, parse_run_log(text), time.monotonic() - t0)


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> SlurmRun:
    problem = cluster_problem()
    if problem:
        pytest.skip(problem)
    return _run_cluster(workflow_copy(tmp_path_factory.mktemp("slurm")), "slurm")


def _check_against_slurm(run: SlurmRun) -> dict[str, list[dict[str, str]]]:
    """Each submitted Snakemake job is a COMPLETED Slurm job in the partition and with the GPUs its resources name.
    Returns the Slurm records by rule (or group) name."""
    records = scontrol_jobs()
    by_rule: dict[str, list[dict[str, str]]] = {}
    seen = set()
    for job in run.jobs.values():
        if job.local or job.rule == "all":
            assert job.slurm_id is None
            continue
        if job.group:
            continue
        assert job.slurm_id, f"{job.rule} (job {job.jobid}) was not submitted to Slurm"
        rec = records[job.slurm_id]
        assert rec["JobState"] == "COMPLETED", rec
        assert comment_rule(rec) == job.rule
        assert rec["Partition"] == job.resources["slurm_partition"], (job.rule, rec["Partition"])
        assert sum(allocated_gpus(rec).values()) == _gpus_requested(job.resources), (job.rule, rec.get("JOB_GRES"))
        by_rule.setdefault(job.rule, []).append(rec)
        seen.add(job.slurm_id)
    # group jobs: one Slurm job per group job, by group name
    groups = {j.group for j in run.jobs.values() if j.group}
    for jid, logdir in submitted_groups(run.log).items():
        rec = records[jid]
        assert rec["JobState"] == "COMPLETED", rec
        by_rule.setdefault(group_of(logdir, groups), []).append(rec)
        seen.add(jid)
    assert submitted_ids(run.log) == seen
    return by_rule


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_slurm_profile_jobs_on_the_cluster(slurm_run: SlurmRun):
    by_rule = _check_against_slurm(slurm_run)
    gpu_rules = profile_gpu_rules("slurm")
    ran = {j.rule for j in slurm_run.jobs.values()}
    assert "trace" in ran and "trace" in gpu_rules
    for rule, recs in by_rule.items():
        for rec in recs:
            if rule in gpu_rules:
                assert rec["Partition"] == "gpu" and sum(allocated_gpus(rec).values()) == 1, (rule, rec)
            else:
                assert rec["Partition"] == "cpu" and not allocated_gpus(rec), (rule, rec)
    assert gpu_rules & ran <= set(by_rule), "a rule that the profile gives a GPU did not run as a Slurm job"
    # light rules ran on the submitting host, as the workflow's localrules say, and nothing else did
    local = {j.rule for j in slurm_run.jobs.values() if j.local} - {"all"}
    assert local and local <= localrules_of_workflow()
    assert not local & set(by_rule)
    assert ran - local - {"all"} <= set(by_rule)
    print(f"slurm profile: {len(slurm_run.jobs)} jobs, {sum(map(len, by_rule.values()))} Slurm jobs, "
          f"{slurm_run.seconds:.0f} s")


TABLES = ("*.parquet", "*.csv", "*.tsv", "*.json")


def result_tables(results: Path) -> dict[str, Path]:
    out = {}
    for pattern in TABLES:
        for p in results.rglob(pattern):
            rel = p.relative_to(results).as_posix()
            if not rel.startswith(("logs/", "benchmarks/", "models/")):
                out[rel] = p
    return out


def _same_table(a: Path, b: Path, b_results: str | None = None) -> None:
    """``a`` equals ``b``; ``b_results``: the results directory that paths in ``b`` start with (the local run's
    odd one, tests/tiny_run.py), read as ``results`` (the Slurm run's)."""
    def fix(df: pd.DataFrame) -> pd.DataFrame:
        if b_results is None:
            return df
        out = df.copy()
        for c in out.columns:
            if pd.api.types.is_string_dtype(out[c]):  # keeps the column's dtype (str or object)
                out[c] = out[c].str.replace(f"{b_results}/", "results/", regex=False)
        return out

    if a.suffix == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(a), fix(pd.read_parquet(b)), obj=str(a))
    elif a.suffix in (".csv", ".tsv"):
        sep = "\t" if a.suffix == ".tsv" else ","
        pd.testing.assert_frame_equal(pd.read_csv(a, sep=sep), fix(pd.read_csv(b, sep=sep)), obj=str(a))
    else:  # a build's evaluation also records its wall-clock times, which no two runs share
        def values(p: Path, prefix: str | None) -> dict:
            text = p.read_text()
            if prefix is not None:
                text = text.replace(json.dumps(f"{prefix}/")[1:-1], "results/")
            return {k: v for k, v in json.loads(text).items() if k != "timing_s"}

        assert values(a, None) == values(b, b_results), a


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_slurm_tables_equal_a_local_run(slurm_run: SlurmRun, tiny_run):
    ours = result_tables(slurm_run.workdir / "results")
    local = result_tables(tiny_run.res)
    assert set(ours) == set(local)
    assert any(k.startswith("trace/") for k in ours) and any(k.startswith("aie/") for k in ours)
    for rel in sorted(ours):
        _same_table(ours[rel], local[rel], RESULTS)


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_second_slurm_run_submits_nothing(slurm_run: SlurmRun):
    before = len(scontrol_jobs())
    again = _run_cluster(slurm_run.workdir, "slurm")
    assert "submitted with SLURM jobid" not in again.log
    assert not again.jobs, f"a second run has jobs to do: {sorted({j.rule for j in again.jobs.values()})}"
    assert len(scontrol_jobs()) == before


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_failing_slurm_job_is_reported_with_its_log(tmp_path: Path):
    wd = workflow_copy(tmp_path)
    target = "results/prompts/shard-0000.parquet"
    first = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "config/tiny.yaml", *FAST, target)
    assert first.returncode == 0, first.stderr[-3000:]
    # a readable table without the prompts' columns: the shard job (local) is not rerun, the tts job fails
    pd.DataFrame({"not_a_prompt": [1, 2]}).to_parquet(wd / target)
    proc = snakemake(wd, "--profile", "profiles/slurm", "--configfile", "config/tiny.yaml", *FAST, "--retries", "0",
                     "results/speech/audio/shard-0000.parquet", timeout=600)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule tts" in text
    m = re.search(r"SLURM jobid (\d+)", text)
    assert m, text[-3000:]
    assert scontrol_jobs()[m.group(1)]["JobState"] == "FAILED"
    rule_log = wd / "results/logs/tts/0000.log"
    assert rule_log.exists() and rule_log.read_text().strip()
    # the rule's log is printed (show-failed-logs), and the Slurm log's path is named
    assert rule_log.read_text().strip().splitlines()[-1] in text
    assert ".snakemake/slurm_logs/rule_tts" in text


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_job_that_cannot_start_is_visible_in_squeue(tmp_path: Path):
    """A job asking for more CPUs than any node has pends forever (reason PartitionConfig) and the plugin's status
    check sees only PENDING: Snakemake would wait silently. `squeue -o %r` names the reason (README)."""
    out = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-c", "512", "-o", str(tmp_path / "never.log"),
                          "--wrap", "true"], capture_output=True, text=True, check=False)
    if out.returncode != 0:  # a cluster that rejects it at submission: Snakemake then fails at once
        assert "not available" in out.stderr or "satisfied" in out.stderr, out.stderr
        return
    jid = out.stdout.strip().split(";")[0]
    try:
        reason = ""
        for _ in range(240):  # the scheduler names the reason at its next pass (slower on a loaded machine)
            q = subprocess.run(["squeue", "-h", "-j", jid, "-o", "%T %r"], capture_output=True, text=True, check=False)
            state, _, reason = q.stdout.strip().partition(" ")
            if reason and reason not in ("None", "Priority"):
                break
            time.sleep(0.5)
        assert state == "PENDING" and reason in ("PartitionConfig", "Resources", "ReqNodeNotAvail"), q.stdout
    finally:
        subprocess.run(["scancel", jid], check=False)


@pytest.mark.slurm
@pytest.mark.slow
@needs_cluster
def test_alvis_profile_on_the_cluster(slurm_run: SlurmRun, tmp_path_factory):
    """profiles/alvis re-makes part of the Slurm run's results (one shard's trace table of one kind and the speech
    tokens of one shard, and what reads them): every Slurm job holds exactly one GPU, model jobs an A40, grouped
    jobs a T4, and the re-made tables equal the first run's."""
    wd = tmp_path_factory.mktemp("alvis") / "wf"
    shutil.copytree(slurm_run.workdir, wd, symlinks=True)
    res = wd / "results"
    trace_dir = res / "trace/smollm2/t2t/hidden"
    removed = [trace_dir / "shard-0000.parquet", res / "speech/tokens/shard-0000.parquet",
               res / "aie/smollm2/t2t.parquet"]
    assert all(p.exists() for p in removed)
    for p in removed:
        p.unlink()
    # the removed tables are targets themselves: Snakemake does not remake a missing intermediate whose
    # downstream outputs exist (the workflow's `all` lists every table for that reason)
    targets = ["results/aie/smollm2/t2t.parquet", "results/speech/tokens/shard-0000.parquet",
               "results/trace/smollm2/t2t/hidden/shard-0000.parquet",
               "results/speech/token_map/speechlm/shard-0000.parquet"]
    run = _run_cluster(wd, "alvis", *targets)
    records = scontrol_jobs()
    ours = {jid: records[jid] for jid in submitted_ids(run.log)}
    assert ours and all(rec["WorkDir"] == str(wd) for rec in ours.values())
    groups = set(profile("alvis")["group-components"])
    grouped = {jid: group_of(d, groups) for jid, d in submitted_groups(run.log).items()}
    kinds: dict[str, set[str]] = {}
    for jid, rec in ours.items():
        gpus = allocated_gpus(rec)
        kind = grouped.get(jid) or comment_rule(rec)
        assert rec["JobState"] == "COMPLETED" and rec["Partition"] == "gpu", rec
        assert sum(gpus.values()) == 1, (kind, rec.get("JOB_GRES"))
        kinds.setdefault(kind, set()).update(gpus)
    assert kinds.get("trace") == {"A40"}
    assert {"speech", "analysis"} <= set(kinds) and all(kinds[g] == {"T4"} for g in groups & set(kinds))
    assert set(kinds) <= profile_gpu_rules("alvis") | groups
    for p in removed:
        _same_table(p, slurm_run.workdir / p.relative_to(wd))
    print(f"alvis profile: {len(ours)} Slurm jobs, {run.seconds:.0f} s")
