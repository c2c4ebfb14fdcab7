"""Each TTS backend gets its own parameters: MeloTTS a speed factor (~1.0, never eSpeak's words per minute) and
its device; the MeloTTS worker runs with only melo, soundfile, numpy and pyarrow (mocked melo here)."""

from __future__ import annotations

import ast
import json
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from factrace.core.config import migrate_flat_keys
from factrace.speech.tts import melotts_worker
from factrace.speech.tts import synthesis as tts
from factrace.speech.tts.params import TTSConfigError, tts_options

ROOT = Path(__file__).resolve().parents[1]


class FakeTTS:
    calls: ClassVar[list[dict]] = []

    def __init__(self, language, device="auto", **kw):
        FakeTTS.calls.append({"init": True, "language": language, "device": device})
        self.hps = types.SimpleNamespace(data=types.SimpleNamespace(spk2id={"EN-US": 0, "EN-BR": 1}))

    def tts_to_file(self, text, speaker_id, output_path, speed=1.0, **kw):
        FakeTTS.calls.append({"text": text, "speaker_id": speaker_id, "speed": speed})
        sf.write(output_path, np.sin(np.arange(4410) / 10).astype(np.float32) * 0.3, 44100)


@pytest.fixture
def fake_melo(monkeypatch):
    FakeTTS.calls = []
    melo = types.ModuleType("melo")
    api = types.ModuleType("melo.api")
    api.TTS = FakeTTS
    melo.api = api
    monkeypatch.setitem(sys.modules, "melo", melo)
    monkeypatch.setitem(sys.modules, "melo.api", api)
    return FakeTTS


def filled(tts: dict) -> tuple[dict, list[str]]:
    """``speech.tts`` as the workflow sees it: deprecated flat keys moved (with their warnings), then the schema's
    defaults filled in (common.smk does the same, in that order)."""
    from snakemake.utils import validate

    tts = json.loads(json.dumps(tts))
    warnings = migrate_flat_keys(tts)
    cfg = {"facts": {"path": "f.json"}, "models": {"m": {"loader": "hf", "n_layers": 1}}, "tracing": {},
           "speech": {"tts": tts}}
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return cfg["speech"]["tts"], warnings


def test_paper_config_gives_melotts_a_speed_factor_and_its_device():
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    tts, warnings = filled(cfg["speech"]["tts"])
    opts = tts_options(tts)
    assert opts.backend == "melotts" and warnings == []
    assert 0.5 <= opts.options["speed"] <= 2.0 and opts.options["device"] == cfg["speech"]["tts"]["melotts"]["device"]
    assert "rate" not in opts.options


def test_old_flat_keys_still_work_with_a_deprecation_warning():
    old_paper, warnings = filled({"backend": "melotts", "speaker": "EN-BR", "device": "cuda", "rate": 160})
    opts = tts_options(old_paper)
    assert opts.options["speaker"] == "EN-BR" and opts.options["device"] == "cuda"
    assert opts.options["speed"] == 1.0  # eSpeak's 160 words/min never becomes MeloTTS's speed
    assert any("speech.tts.rate" in w and "espeak.rate" in w for w in warnings)
    tts, warnings = filled({"backend": "espeak", "voice": "en-gb", "rate": 200})
    assert tts_options(tts).options == {"voice": "en-gb", "rate": 200, "pitch": 50} and len(warnings) == 2
    tts, warnings = filled({"backend": "espeak", "rate": 200, "espeak": {"rate": 175}})  # the new key wins
    assert tts_options(tts).options["rate"] == 175 and "ignored" in warnings[0]


def test_out_of_range_parameters_name_the_config_key():
    with pytest.raises(TTSConfigError, match="speech.tts.melotts.speed"):
        tts_options({"backend": "melotts", "melotts": {"speed": 160}})
    with pytest.raises(TTSConfigError, match="speech.tts.espeak.rate"):
        tts_options({"backend": "espeak", "espeak": {"rate": 1.0, "pitch": 50}})


def test_melotts_worker_passes_speed_and_device_to_melo(tmp_path, fake_melo, monkeypatch):
    import os

    monkeypatch.setattr(os, "environ", dict(os.environ))  # the worker sets the hub offline in its process
    prompts = tmp_path / "p.parquet"
    pd.DataFrame({"known_id": [3, 1], "prompt": ["The capital of Italy is", "Paris is in"],
                  "subject": ["Italy", "Paris"], "attribute": ["Rome", "France"]}).to_parquet(prompts)
    out = tmp_path / "raw"
    melotts_worker.main(["--prompts", str(prompts), "--out-dir", str(out), "--speaker", "EN-BR", "--speed", "1.0",
                         "--device", "cuda:0", "--cache-dir", str(tmp_path / "cache")])
    init = [c for c in fake_melo.calls if c.get("init")]
    assert init == [{"init": True, "language": "EN", "device": "cuda:0"}]
    synth = [c for c in fake_melo.calls if "speed" in c]
    assert len(synth) == 6 and {c["speed"] for c in synth} == {1.0} and {c["speaker_id"] for c in synth} == {1}
    assert synth[0]["text"] == "Paris is in"  # known_id order
    meta = json.loads((out / "synth.json").read_text())
    assert meta["speed"] == 1.0 and meta["device"] == "cuda:0" and meta["files"]["3_prompt"]["ok"]
    # the tts rule's side: resampled to 16 kHz, parameters in the result
    res = tts.synthesize("The capital of Italy is", tmp_path / "wav" / "3_prompt.wav", "melotts", raw_dir=out)
    assert res.sample_rate == 16000 and res.info["speed"] == 1.0 and res.info["device"] == "cuda:0"
    assert abs(res.duration_s - 0.1) < 0.01
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["NLTK_DATA"].endswith("nltk_data")


def test_melotts_worker_refuses_words_per_minute(tmp_path, fake_melo):
    with pytest.raises(ValueError, match="not words per minute"):
        melotts_worker.synthesize_all([("1_prompt", "hello")], str(tmp_path), speaker="EN-US", speed=160,
                                      device="auto", language="EN")


def test_melotts_worker_imports_nothing_heavy_of_factrace():
    """It runs in MeloTTS's env (Python 3.10, transformers 4.27): stdlib, numpy, soundfile, pyarrow, torch
    (MeloTTS's own) and melo only."""
    tree = ast.parse(Path(melotts_worker.__file__).read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    allowed = {"__future__", "argparse", "json", "logging", "os", "sys", "pathlib", "numpy", "soundfile",
               "pyarrow", "torch", "melo"}
    assert mods <= allowed, mods - allowed
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level > 0]


def _python310() -> str | None:
    import glob
    import shutil

    found = sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.10*" / "bin" / "python3.10")))
    return found[0] if found else shutil.which("python3.10")


@pytest.mark.skipif(_python310() is None, reason="no Python 3.10 interpreter on this machine")
def test_melotts_worker_compiles_on_python_310():
    import subprocess

    proc = subprocess.run([_python310(), "-m", "py_compile", melotts_worker.__file__], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_tts_stage_writes_the_manifest_from_the_melotts_worker(tmp_path, fake_melo, monkeypatch):
    import os

    from factrace.core import io
    from factrace.core.provenance import Provenance
    from factrace.speech.tts import stage as stages

    monkeypatch.setattr(os, "environ", dict(os.environ))
    prompts = tmp_path / "p.parquet"
    df = pd.DataFrame({"known_id": [1], "prompt": ["Paris is in"], "subject": ["Paris"], "attribute": ["France"],
                       "template": ["{} is in"], "relation_id": ["P17"], "shard": [0]})
    io.write_table(df, prompts, "prompts", Provenance(stage="shard"))
    melotts_worker.main(["--prompts", str(prompts), "--out-dir", str(tmp_path / "raw"), "--device", "cpu"])
    opts = tts_options(filled({"backend": "melotts", "melotts": {"device": "cpu"}})[0]).options
    manifest = stages.run_tts(prompts, tmp_path / "a.parquet", tmp_path / "wav", "melotts", options=opts,
                              melotts_dir=tmp_path / "raw")
    assert manifest["ok"].all() and set(manifest["sample_rate"]) == {16000} and set(manifest["voice"]) == {"EN-US"}
    prov = io.read_provenance(tmp_path / "a.parquet")
    assert '"speed": 1.0' in json.dumps(prov, sort_keys=True) and "rate" not in json.dumps(prov.get("extra", {}))
