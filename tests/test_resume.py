"""A trace job killed part-way (SIGTERM or SIGKILL) and rerun resumes from its finished facts.

The rerun must not recompute the facts finished before the kill (the log says "resumed from" for each of them)
and must give a table identical to an uninterrupted run.

The helpers at the top (a tiny saved Llama + word-level tokenizer, and the trace stage's inputs) are shared with
test_determinism.py and test_provenance.py.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

FACTS = [
    {"known_id": 0, "subject": "Italy", "attribute": "Rome", "template": "The capital city of {} is",
     "prediction": "Rome", "prompt": "The capital city of Italy is", "relation_id": "P36"},
    {"known_id": 1, "subject": "France", "attribute": "Paris", "template": "The capital city of {} is",
     "prediction": "Paris", "prompt": "The capital city of France is", "relation_id": "P36"},
    {"known_id": 2, "subject": "Rome", "attribute": "Italy", "template": "The city of {} is located in",
     "prediction": "Italy", "prompt": "The city of Rome is located in", "relation_id": "P17"},
    {"known_id": 3, "subject": "Paris", "attribute": "France", "template": "The city of {} is located in",
     "prediction": "France", "prompt": "The city of Paris is located in", "relation_id": "P17"},
]
WORDS = ["<unk>", "<eos>", "the", "capital", "city", "of", "italy", "france", "rome", "paris", "is", "located",
         "in", ",", "."]
N_LAYERS = 6


def save_tiny_model(path: Path, n_layers: int = N_LAYERS, seed: int = 0) -> Path:
    """A tiny random LlamaForCausalLM and a word-level fast tokenizer (with offsets) saved as an `hf` dir."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=None, eos_token_id=1, pad_token_id=1)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20.0)  # visibly different probabilities
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def model_spec(path: Path, n_layers: int = N_LAYERS) -> str:
    return json.dumps({"loader": "hf", "path": str(path), "n_layers": n_layers, "dtype": "float32",
                       "device": "cpu"})


def write_trace_inputs(root: Path, facts: list[dict] = FACTS, shard_size: int = 8) -> dict[str, Path]:
    """facts.json, the shard's prompts table, a filter table keeping every fact and a noise file under ``root``."""
    from factrace.core import io
    from factrace.core.provenance import Provenance
    from factrace.facts.known import facts_frame, load_facts

    root.mkdir(parents=True, exist_ok=True)
    facts_path = root / "facts.json"
    facts_path.write_text(json.dumps(facts, indent=1))
    prompts = facts_frame(load_facts(facts_path), shard_size)
    io.write_table(prompts, root / "prompts.parquet", "prompts", Provenance(stage="shard"))
    filt = pd.DataFrame({
        "known_id": prompts["known_id"], "model": "tiny", "modality": "t2t", "generation": prompts["attribute"],
        "match": "exact", "kept": True, "target_token_id": [WORDS.index(a.lower()) for a in prompts["attribute"]],
        "target_token": [a.lower() for a in prompts["attribute"]], "reason": "",
    })
    io.write_table(filt, root / "filter.parquet", "filter", Provenance(stage="filter"))
    (root / "noise.json").write_text(json.dumps({"scale": 2.0}))
    return {"facts": facts_path, "prompts": root / "prompts.parquet", "filter": root / "filter.parquet",
            "noise": root / "noise.json"}


def trace_argv(model_dir: Path, inputs: dict[str, Path], out: Path, *, kind: str = "hidden", samples: int = 3,
               max_rows: int = 64, seed: int = 1) -> list[str]:
    return [
        "trace", "--model", "tiny", "--model-spec", model_spec(model_dir), "--modality", "t2t",
        "--kind-settings", json.dumps([[kind, {"samples": samples, "seed": seed, "window": 3}]]),
        "--layer-lo", "0", "--layer-hi", str(N_LAYERS), "--prompts", str(inputs["prompts"]),
        "--filter", str(inputs["filter"]), "--noise", str(inputs["noise"]), "--engine", "reference",
        "--max-rows", str(max_rows), "--out", str(out),
    ]


def subprocess_env() -> dict[str, str]:
    exe_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{exe_dir}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as in the subprocesses (OMP_NUM_THREADS=1): the same arithmetic, and no thread
    oversubscription on a small shared machine (two threads on two busy cores run ~50x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def factrace_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "factrace", *args]


def run_cli(argv: list[str], caplog: pytest.LogCaptureFixture | None = None) -> str:
    """``factrace <argv>`` in this process (a subprocess costs seconds of imports); returns the log text."""
    from factrace.cli import main

    if caplog is None:
        assert main(argv) == 0
        return ""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="factrace"):
        assert main(argv) == 0
    return caplog.text


# ------------------------------------------------------------------------------------------------ the tests
# max-rows 1: one cell per forward, so a fact takes a good fraction of a second and the kill lands mid-way.
SLOW = {"kind": "mlp", "samples": 4, "max_rows": 1}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("resume")
    model_dir = save_tiny_model(root / "model")
    inputs = write_trace_inputs(root / "inputs")
    clean = root / "clean" / "trace.parquet"
    run_cli(trace_argv(model_dir, inputs, clean, **SLOW))  # the uninterrupted run
    return model_dir, inputs, clean


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_trace_resumes_and_matches_clean_run(setup, tmp_path, caplog, sig):
    from factrace.core import io

    model_dir, inputs, clean = setup
    out = tmp_path / "trace.parquet"
    parts = tmp_path / "trace.parquet.parts"
    returncode, finished = _kill_after_first_part(factrace_cmd(*trace_argv(model_dir, inputs, out, **SLOW)), parts,
                                                  tmp_path / "first.log", sig)
    assert returncode == -sig
    assert 1 <= len(finished) < len(FACTS), finished
    assert not out.exists(), "a killed job must not leave a finished-looking table"
    # what a SIGKILL during a part's write leaves: a half-written temporary file (and, from an older job, clutter)
    (parts / ".known_3.parquet.k1ll3d.part").write_bytes(b"PAR1 cut short")
    (parts / "stray-dir").mkdir()
    (parts / "stray-dir" / "x").write_text("x")

    # the rerun: the same command (in this process, to save the imports of a second subprocess)
    log = run_cli(trace_argv(model_dir, inputs, out, **SLOW), caplog)
    resumed = sorted(int(k) for k in re.findall(r"\(known_id=(\d+)\): resumed from", log))
    recomputed = sorted(int(k) for k in re.findall(r"\(known_id=(\d+), \d+ tokens\): p_clean", log))
    assert resumed == finished, log[-3000:]  # every finished fact was read back ...
    assert not set(recomputed) & set(finished)  # ... and none of them traced again
    assert sorted(resumed + recomputed) == [f["known_id"] for f in FACTS]
    assert not parts.exists(), "parts are removed once the shard table is written"

    pd.testing.assert_frame_equal(io.read_table(out, "trace"), io.read_table(clean, "trace"), check_exact=True)


def _kill_after_first_part(argv: list[str], parts: Path, log_path: Path,
                           sig: int = signal.SIGKILL) -> tuple[int, list[int]]:
    """Start ``argv``; send ``sig`` once one fact's part is written. Returns the exit status and the finished
    facts' known_ids."""
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=fh, env=subprocess_env())
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.is_dir() and any(parts.glob("*.parquet")):
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the job ended before it could be killed:\n{log_path.read_text()[-3000:]}"
        proc.send_signal(sig)
        proc.wait(timeout=60)
    return proc.returncode, sorted(int(re.search(r"known_(\d+)", p.name).group(1)) for p in parts.glob("*.parquet"))


def test_parts_of_other_settings_are_discarded_not_mixed(setup, tmp_path, caplog):
    """Issue 11 (1): a job killed under one `tracing.samples`, rerun under another, must not resume the old
    parts: its table equals a clean run under the new settings."""
    from factrace.core import io

    model_dir, inputs, _ = setup
    out = tmp_path / "trace.parquet"
    parts = tmp_path / "trace.parquet.parts"
    _, finished = _kill_after_first_part(factrace_cmd(*trace_argv(model_dir, inputs, out, **SLOW)), parts,
                                         tmp_path / "first.log")
    assert finished
    # the same parts under the old naming (known_id only), as today's jobs leave them
    for p in list(parts.glob("*.parquet")):
        kid = re.search(r"known_(\d+)", p.name).group(1)
        (parts / f"known_{kid}.parquet").write_bytes(p.read_bytes())

    new = {**SLOW, "samples": 2, "max_rows": 64}
    log = run_cli(trace_argv(model_dir, inputs, out, **new), caplog)
    assert "resumed from" not in log, log[-3000:]
    assert "discarding" in log
    clean = tmp_path / "clean" / "trace.parquet"
    run_cli(trace_argv(model_dir, inputs, clean, **new))
    got = io.read_table(out, "trace")
    assert set(got["samples"]) == {2}
    pd.testing.assert_frame_equal(got, io.read_table(clean, "trace"), check_exact=True)
    assert not parts.exists()


def test_parts_dir_that_is_a_file_or_holds_clutter_is_cleared(setup, tmp_path, caplog):
    """Issue 11 (4): leftovers never make the job fail (today: `rmdir` of a non-empty directory)."""
    from factrace.core import io

    model_dir, inputs, _ = setup
    out = tmp_path / "trace.parquet"
    parts = tmp_path / "trace.parquet.parts"
    parts.mkdir()
    (parts / ".known_0.parquet.abcd.part").write_bytes(b"half")
    (parts / "known_1-0000000000000000.parquet").write_bytes(b"not parquet")
    fast = {"kind": "mlp", "samples": 2, "max_rows": 64}
    run_cli(trace_argv(model_dir, inputs, out, **fast), caplog)
    assert not parts.exists()
    clean2 = tmp_path / "clean" / "trace.parquet"
    run_cli(trace_argv(model_dir, inputs, clean2, **fast))
    pd.testing.assert_frame_equal(io.read_table(out, "trace"), io.read_table(clean2, "trace"), check_exact=True)
