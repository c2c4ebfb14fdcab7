"""One checkpoint list for the plan-time check and `factrace fetch-checkpoints` (login node, hub mocked)."""

from __future__ import annotations

import copy
import sys
import types
from pathlib import Path

import pytest
import yaml
from factrace.cli import main
from factrace.core.config import load_config
from factrace.models import fetch
from factrace.models.checkpoints import checkpoint_problems, job_environment, required_checkpoints

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def paper(tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    return load_config(ROOT / "config" / "paper.yaml")


def test_every_checkpoint_of_the_paper_config_is_listed_with_its_config_key(paper):
    keys = {c.key: c for c in required_checkpoints(paper)}
    assert set(keys) == {"models.llama2_7b.path", "models.spiritlm_base.path", "models.spiritlm_expressive.path",
                         "speech.tts.melotts.cache_dir", "speech.asr.model", "speech.alignment.ctc_model",
                         "speech.units.checkpoints_dir", "facts.path"}
    assert keys["speech.asr.model"].source == "hf:Systran/faster-whisper-small"
    assert keys["speech.asr.model"].path == Path("checkpoints/faster-whisper-small")  # a directory, not "small"
    problems = checkpoint_problems(paper)
    assert len(problems) == 7 and all(p.startswith("`") for p in problems)  # facts: the download rule makes it
    assert any("`speech.alignment.ctc_model`" in p and "fetch-checkpoints" in p for p in problems)


def test_offline_config_needs_no_checkpoint():
    assert checkpoint_problems(load_config(ROOT / ".test" / "config" / "config.yaml")) == []


def test_dry_run_lists_everything_and_fetches_nothing(paper, tmp_path, capsys, monkeypatch):
    cfgfile = tmp_path / "paper.yaml"
    cfgfile.write_text(yaml.safe_dump(paper))
    hub = types.ModuleType("huggingface_hub")
    hub.snapshot_download = lambda **kw: pytest.fail(f"dry run downloaded {kw}")
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    assert main(["fetch-checkpoints", "--configfile", str(cfgfile), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("speech.asr.model: snapshot Systran/faster-whisper-small -> checkpoints/faster-whisper-small",
                 "speech.alignment.ctc_model: snapshot facebook/hubert-large-ls960-ft",
                 "speech.tts.melotts.cache_dir: snapshot myshell-ai/MeloTTS-English -> checkpoints/melotts/hf",
                 "models.llama2_7b.path: snapshot meta-llama/Llama-2-7b-hf -> checkpoints/Llama-2-7b-hf",
                 "models.spiritlm_base.path: manual:", "facts.path: download https://rome.baulab.info"):
        assert line in out, out
    assert not (tmp_path / "checkpoints").exists()


def test_fetch_writes_where_the_config_says(paper, tmp_path, monkeypatch):
    cfg = copy.deepcopy(paper)
    cfg["speech"]["asr"]["model"] = str(tmp_path / "elsewhere" / "whisper")
    cfg["speech"]["alignment"]["ctc_model"] = str(tmp_path / "ctc")
    cfg["speech"]["tts"]["melotts"]["cache_dir"] = str(tmp_path / "melo")
    calls = []

    def snapshot_download(repo_id, local_dir=None, cache_dir=None, allow_patterns=None):
        calls.append((repo_id, local_dir, cache_dir))
        target = Path(local_dir or cache_dir)
        target.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "model.bin", "vocab.json", "preprocessor_config.json"):
            (target / f).write_text("{}")
        return str(target)

    hub = types.ModuleType("huggingface_hub")
    hub.snapshot_download = snapshot_download
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    monkeypatch.setattr(fetch, "_download", lambda url, dest, sha256=None: (dest.parent.mkdir(parents=True,
                        exist_ok=True), dest.write_text(url)))
    fetch.run(cfg)
    assert ("Systran/faster-whisper-small", str(tmp_path / "elsewhere" / "whisper"), None) in calls
    assert ("facebook/hubert-large-ls960-ft", str(tmp_path / "ctc"), None) in calls
    assert ("myshell-ai/MeloTTS-English", None, str(tmp_path / "melo" / "hf")) in calls
    assert (tmp_path / "melo" / "nltk_data" / "corpora" / "cmudict.zip").is_file()
    keys = {c.key for c in required_checkpoints(cfg) if c.problem() is None}
    assert {"speech.asr.model", "speech.alignment.ctc_model", "speech.tts.melotts.cache_dir"} <= keys
    calls.clear()
    fetch.run(cfg)  # in place: nothing fetched again
    assert not [c for c in calls if c[0] in ("Systran/faster-whisper-small", "facebook/hubert-large-ls960-ft")]


def test_jobs_are_offline_and_import_the_workflows_own_package(tmp_path):
    env = job_environment(tmp_path, {"PYTHONPATH": "/x"})
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["PYTHONPATH"].split(":") == [str((tmp_path / "workflow").resolve()), "/x"]


def test_download_facts_is_a_local_rule():
    text = (ROOT / "workflow" / "rules" / "facts.smk").read_text()
    assert "localrules:\n        download_facts," in text
