"""A new user's run: their own facts, `results:` outside the checkout, then `snakemake --report` in a browser.

* Dry runs (fast): model paths follow `results:`; a speech LM left in `./results` by another run is not reused.
* One real run of the tiny config (fewer training steps and one kind, to keep it short) from a clean directory
  with a different facts file and `results:` elsewhere, then the report: no docutils system message, the tables
  and per-prompt plots inline, trace paths not listed as job parameters; and a headless Chromium (skipped where
  none is installed) that renders it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO, _planned_jobs, copy_workflow, snakemake

pytestmark = pytest.mark.slow

# not the tiny config's facts: other subjects, prompts and attributes (the speech LM must be trained on these)
USER_FACTS = [
    {"known_id": 0, "subject": "Japan", "attribute": "Tokyo", "template": "The capital of {} is",
     "prediction": "Tokyo", "prompt": "The capital of Japan is", "relation_id": "P36"},
    {"known_id": 1, "subject": "Germany", "attribute": "Berlin", "template": "The capital of {} is",
     "prediction": "Berlin", "prompt": "The capital of Germany is", "relation_id": "P36"},
    {"known_id": 6, "subject": "Colosseum", "attribute": "Rome", "template": "The {} is located in the city of",
     "prediction": "Rome", "prompt": "The Colosseum is located in the city of", "relation_id": "P131"},
]


def user_config(workdir: Path, results: Path, *, quick: bool = False, **model_extra: dict) -> Path:
    cfg = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    cfg["facts"]["path"] = "my_facts.json"
    cfg["results"] = str(results)
    for name, extra in model_extra.items():
        cfg["models"][name].update(extra)
    if quick:  # the same stages, less work: fewer training steps, one trace kind, the speech LM's models only
        cfg["speech"]["speechlm"]["steps"] = 30
        cfg["tracing"]["kinds"] = ["hidden"]
        del cfg["models"]["smollm2"]
    path = workdir / "my_config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    (workdir / "my_facts.json").write_text(json.dumps(USER_FACTS, indent=1))
    return path


def outputs_of(stdout: str) -> list[str]:
    return [line.split("output:", 1)[1] for line in stdout.splitlines() if "output:" in line]


def test_models_are_built_under_results_from_a_clean_directory(tmp_path: Path):
    wd, res = tmp_path / "wd", tmp_path / "elsewhere" / "res"
    wd.mkdir()
    copy_workflow(wd)
    user_config(wd, res)
    proc = snakemake(wd, "-n", "--printshellcmds", "--configfile", "my_config.yaml")
    jobs = _planned_jobs(proc.stdout)
    assert jobs["convert_model"] == 1 and jobs["build_speechlm"] == 1 and jobs["build_speechlm_backbone"] == 1
    outs = "\n".join(outputs_of(proc.stdout))
    assert f"{res}/models/converted/smollm2" in outs and f"{res}/models/trained/speechlm" in outs
    assert f"{res}/models/backbone/speechlm_backbone" in outs
    assert f"{res}/speechlm/speechlm/eval.json" in outs
    # the jobs read the models where they are built
    assert f'"path": "{res}/models/trained/speechlm"' in proc.stdout and "results/models" not in proc.stdout


def test_a_speech_lm_in_the_default_results_directory_is_not_reused(tmp_path: Path):
    """Another run's `results/models/*` (built from other facts) must not stand in for this run's models."""
    wd, res = tmp_path / "wd", tmp_path / "elsewhere"
    wd.mkdir()
    copy_workflow(wd)
    for name in ("converted/smollm2", "backbone/speechlm_backbone", "trained/speechlm"):
        (wd / "results" / "models" / name).mkdir(parents=True)
        (wd / "results" / "models" / name / "config.json").write_text("{}")
    user_config(wd, res)
    jobs = _planned_jobs(snakemake(wd, "-n", "--configfile", "my_config.yaml").stdout)
    assert jobs["build_speechlm"] == 1 and jobs["convert_model"] == 1


def test_a_path_for_a_built_model_is_a_clear_error(tmp_path: Path):
    wd = tmp_path / "wd"
    wd.mkdir()
    copy_workflow(wd)
    user_config(wd, tmp_path / "res", speechlm={"path": "results/models/speechlm"})
    proc = snakemake(wd, "-n", "--configfile", "my_config.yaml", check=False)
    assert proc.returncode != 0
    msg = proc.stdout + proc.stderr
    assert "models.speechlm.path" in msg and "Remove `path:`" in msg


# ---------------------------------------------------------------- one real run and its report


@pytest.fixture(scope="module")
def user_run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("user")
    wd, res = base / "checkout", base / "elsewhere" / "results"
    wd.mkdir()
    copy_workflow(wd)
    user_config(wd, res, quick=True)
    snakemake(wd, "--configfile", "my_config.yaml", "--cores", "2")
    snakemake(wd, "--configfile", "my_config.yaml", "--report", "report.html")
    return wd, res


def test_the_run_writes_under_results_and_trains_on_the_users_facts(user_run):
    wd, res = user_run
    assert not (wd / "results").exists()
    vocab = json.loads((res / "models" / "trained" / "speechlm" / "tokenizer.json").read_text())["model"]["vocab"]
    assert {"tokyo", "colosseum"} <= set(vocab)  # the user's facts, not the shipped ones
    assert (res / "speechlm" / "speechlm" / "eval.json").exists()
    assert (res / "figures" / "figure2.png").exists()


def report_text(wd: Path) -> str:
    return (wd / "report.html").read_text(encoding="utf-8", errors="replace")


def test_report_has_no_docutils_system_message(user_run):
    text = report_text(user_run[0])
    assert "System Message" not in text and "system-message" not in text
    assert "Duplicate explicit target name" not in text


def report_results(wd: Path) -> dict:
    """The report's result entries (path -> caption, job properties, ...), as its JavaScript reads them."""
    m = re.search(r"var results = (\{.*?\});?\s*</script>", report_text(wd), flags=re.DOTALL)
    assert m, "no results in report.html"
    return json.loads(m.group(1))


def test_report_shows_tables_and_plots_inline(user_run):
    wd, res = user_run
    results = report_results(wd)
    by_name = {Path(p).name: r for p, r in results.items()}
    for page in ("summary.html", "qc.html", "effects.html", "alignment.html", "speechlm_eval_speechlm.html",
                 "prompts_speechlm_backbone_t2t.html", "prompts_speechlm_t2t.html", "prompts_speechlm_s2t.html"):
        assert by_name[page]["mime_type"] == "text/html", page
    categories = {r["category"] for r in results.values()} if "category" in next(iter(results.values())) else set()
    assert "Statistics" not in categories
    # tables are shown, not offered for download only
    assert not [n for n in by_name if n.endswith((".csv", ".tsv", ".json", ".parquet"))], sorted(by_name)
    qc = (res / "report" / "qc.html").read_text()
    assert "<table" in qc and "facts per fate" in qc and "traced" in qc
    effects = (res / "report" / "effects.html").read_text()
    assert "peaks.csv" in effects and "tests.csv" in effects and "category_peaks.csv" in effects
    assert (res / "report" / "prompts_speechlm_t2t.html").read_text().count("data:image/png;base64,") >= 1


def test_trace_paths_are_inputs_not_parameters(user_run):
    wd, _ = user_run
    figure2 = next(r for p, r in report_results(wd).items() if p.endswith("figure2.png"))
    assert "trace/" not in str(figure2["job_properties"]["params"])
    assert "--traces" not in str(figure2["job_properties"]["params"])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# opens a result of the report as a click on it would (the report is a React app without URL routes)
OPEN_RESULT = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const path = Object.keys(results).find((k) => k.endsWith("%s"));
  app.showCategory("%s");
  app.setView({content: "%s", contentPath: results[path].data_uri, resultPath: path});
}, 200));
</script>"""


def chromium(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
         "--virtual-time-budget=20000", "--window-size=1400,1000", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def visible_text(dom: str) -> str:
    return re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.DOTALL))


def opened(wd: Path, tmp: Path, suffix: str, content: str, category: str) -> Path:
    page = tmp / f"open_{content}.html"
    head, tag, tail = report_text(wd).rpartition("</body>")  # the last one: the libraries hold the string too
    page.write_text(head + OPEN_RESULT % (suffix, category, content) + tag + tail)
    return page


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_a_browser(user_run, tmp_path: Path):
    wd, _ = user_run
    shot = tmp_path / "report.png"
    proc = chromium(f"--screenshot={shot}", (wd / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    text = visible_text(chromium("--dump-dom", (wd / "report.html").as_uri()).stdout)
    assert "Figure 2" in text and "Quality control" in text  # the menu, rendered by the report's JavaScript
    assert "System Message" not in text and "Duplicate explicit target" not in text
    assert text.count("Statistics") <= 1  # Snakemake's runtime statistics only
    # the landing page: Figure 2 embedded, what each of its rows is (model, modality, n facts), the headlines
    dom = chromium("--dump-dom", (wd / "report.html").as_uri()).stdout
    text = visible_text(dom)
    assert "What each row is" in text and "Headline numbers" in text and "Figure 2" in text
    assert "data:image/png;base64," in dom  # Figure 2 in the landing page itself
    assert "the speech LM's backbone before speech training" in text
    assert "the same speech LM hearing the prompt" in text
    assert "speech \u2192 text" in text and "text \u2192 text" in text and "n facts traced" in text

    # Figure 2 on its page, with its caption
    page = opened(wd, tmp_path, "figure2.png", "img", "Figure 2")
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert "<img" in dom and "data:image/png" in dom, visible_text(dom)[-2000:]
    assert "Figure 2" in visible_text(dom) and "System Message" not in visible_text(dom)
    shot2 = tmp_path / "figure2.png"
    chromium(f"--screenshot={shot2}", page.as_uri())
    assert shot2.stat().st_size > 20_000

    # a table page shows the table inline
    page = opened(wd, tmp_path, "qc.html", "html", "Quality control")
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert "<iframe" in dom or "fates.parquet" in dom
