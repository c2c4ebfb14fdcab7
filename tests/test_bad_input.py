"""Bad input, one test per class: each is an error that names the file, the row and the fix, or a recorded reason.

Classes: malformed facts (and the `factrace shard` exit message), non-ASCII / digit / symbol facts (valid), bad
audio (what tests/test_speech_front.py does not already cover), text that cannot be aligned, a model that never
produces the attribute, and a config with unknown keys or wrong types.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from factrace.core import io
from factrace.core.provenance import Provenance
from factrace.facts.known import FactsError, load_facts, load_facts_checked, skipped_frame
from test_corruption import copy_workflow, snakemake
from test_resume import factrace_cmd, save_tiny_model, subprocess_env

GOOD = {"known_id": 0, "subject": "Italy", "attribute": "Rome", "template": "The capital of {} is",
        "prediction": "Rome", "prompt": "The capital of Italy is", "relation_id": "P36"}


def _facts_file(tmp_path: Path, records) -> Path:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def _load_error(tmp_path: Path, records) -> tuple[Path, str]:
    """A file with no usable fact at all: one error listing every problem."""
    path = _facts_file(tmp_path, records)
    with pytest.raises(FactsError) as err:
        load_facts(path)
    return path, str(err.value)


def _skipped(tmp_path: Path, records, n_good: int = 1) -> tuple[Path, str, list]:
    """A file with bad rows among good ones: the good facts load, each bad row is a skip with its reason."""
    path = _facts_file(tmp_path, records)
    facts, skipped = load_facts_checked(path)
    assert len(facts) == n_good, facts
    return path, "\n".join(s.describe() for s in skipped), skipped


# ---------------------------------------------------------------------------------------------- malformed facts


@pytest.mark.parametrize("field", ["known_id", "subject", "attribute", "prompt"])
def test_missing_field(tmp_path, field):
    bad = {k: v for k, v in {**GOOD, "known_id": 4}.items() if k != field}
    path, msg, skipped = _skipped(tmp_path, [GOOD, bad])
    assert str(path) in msg
    assert f"row 1 (known_id={bad.get('known_id', '?')})" in msg
    assert f"field {field!r} is missing; add it" in msg
    assert [s.row for s in skipped] == [1]


def test_subject_not_in_prompt(tmp_path):
    bad = {**GOOD, "known_id": 3, "subject": "Germany"}
    path, msg, _ = _skipped(tmp_path, [GOOD, bad])
    assert str(path) in msg and "row 1 (known_id=3)" in msg
    assert "subject 'Germany' does not occur in prompt 'The capital of Italy is'" in msg
    assert "fix the subject or the prompt" in msg


@pytest.mark.parametrize("field", ["subject", "attribute", "prompt"])
@pytest.mark.parametrize("value", ["", "   "])
def test_empty_string(tmp_path, field, value):
    bad = {**GOOD, "known_id": 9, field: value}
    path, msg = _load_error(tmp_path, [bad])  # the only row: nothing usable is an error
    assert str(path) in msg and "row 0 (known_id=9)" in msg and "no usable fact" in msg
    assert f"field {field!r} is empty; give it a non-empty string" in msg


@pytest.mark.parametrize("value", [42, 3.5, ["Rome"], {"city": "Rome"}, True],
                         ids=["int", "float", "list", "dict", "bool"])
def test_non_string_attribute_says_what_it_is(tmp_path, value):
    """Issue 11 (10): a non-string attribute was reported as "empty"."""
    bad = {**GOOD, "known_id": 2, "attribute": value}
    _, msg, _ = _skipped(tmp_path, [GOOD, bad])
    assert "is empty" not in msg
    assert f"field 'attribute' must be a string, got {type(value).__name__} {value!r}" in msg


def test_duplicate_ids(tmp_path):
    path, msg, _ = _skipped(tmp_path, [GOOD, {**GOOD, "known_id": 1}, {**GOOD, "subject": "Italy", "known_id": 0}],
                            n_good=2)
    assert str(path) in msg
    assert "row 2 (known_id=0): duplicate known_id, also at row 0; give each fact its own id" in msg


@pytest.mark.parametrize("kid", ["7", 1.5, -2, True, None], ids=["string", "float", "negative", "bool", "null"])
def test_non_integer_id(tmp_path, kid):
    path, msg, skipped = _skipped(tmp_path, [GOOD, {**GOOD, "known_id": kid}])
    assert str(path) in msg and "row 1 (known_id=?)" in msg
    assert skipped[0].known_id is None
    if kid is None:
        assert "field 'known_id' is missing" in msg
    else:
        assert f"known_id must be a non-negative integer, got {kid!r}" in msg


def test_bad_rows_are_skipped_and_the_rest_go_on(tmp_path):
    """Issue 11 (9): one bad row (a template without `{}`) no longer blocks the whole file."""
    records = [GOOD, {**GOOD, "known_id": 1, "subject": ""}, {**GOOD, "known_id": 2, "subject": "Spain"},
               {**GOOD, "known_id": 1}, {**GOOD, "known_id": 5, "template": "The capital of Italy is"},
               {**GOOD, "known_id": 6, "subject": "Rome", "prompt": "The city of Rome is in", "attribute": "Italy"}]
    path, msg, skipped = _skipped(tmp_path, records, n_good=3)
    assert [f.known_id for f in load_facts(path)] == [0, 1, 6]
    assert [(s.row, s.known_id) for s in skipped] == [(1, 1), (2, 2), (4, 5)]
    assert "template 'The capital of Italy is' has no '{}' placeholder" in msg
    table = skipped_frame(skipped)
    assert list(table.columns) == ["file", "row", "known_id", "reason"]
    io.write_table(table, tmp_path / "skipped.parquet", "skipped_facts", Provenance(stage="check_facts"))
    back = io.read_table(tmp_path / "skipped.parquet", "skipped_facts")
    assert back["row"].tolist() == [1, 2, 4] and back["file"].eq(str(path)).all()


@pytest.mark.parametrize(("text", "expected"), [("[{]", "not valid JSON"), ('{"a": 1}', "expected a JSON list"),
                                                ("[1]", "row 0 (known_id=?): expected an object")])
def test_not_a_list_of_facts(tmp_path, text, expected):
    path = tmp_path / "facts.json"
    path.write_text(text)
    with pytest.raises(FactsError, match=re.escape(expected)) as err:
        load_facts(path)
    assert str(path) in str(err.value)


def test_missing_facts_file_names_the_config_key(tmp_path):
    with pytest.raises(FactsError, match="facts.path"):
        load_facts(tmp_path / "nope.json")


def test_factrace_shard_skips_the_bad_row_and_check_facts_records_it(tmp_path):
    path = _facts_file(tmp_path, [GOOD, {**GOOD, "known_id": 5, "subject": "Germany"}])
    out = tmp_path / "shard.parquet"
    proc = subprocess.run(
        factrace_cmd("shard", "--facts", str(path), "--shard", "0000", "--shard-size", "8", "--out", str(out)),
        check=False, capture_output=True, text=True, env=subprocess_env(), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert io.read_table(out, "prompts")["known_id"].tolist() == [0]
    skipped = tmp_path / "skipped.parquet"
    proc = subprocess.run(factrace_cmd("check-facts", "--facts", str(path), "--out", str(skipped)),
                          check=False, capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "1 row(s) skipped" in proc.stderr
    table = io.read_table(skipped, "skipped_facts")
    assert table[["row", "known_id"]].values.tolist() == [[1, 5]]
    assert "fix the subject or the prompt" in table["reason"].item()


def test_config_n_layers_smaller_than_the_model_stops_the_trace(tmp_path):
    """Issue 11 (7): `n_layers` below the model's silently traced a truncated model."""
    from test_resume import N_LAYERS, model_spec, trace_argv, write_trace_inputs

    model_dir = save_tiny_model(tmp_path / "model")
    inputs = write_trace_inputs(tmp_path / "inputs")
    argv = trace_argv(model_dir, inputs, tmp_path / "t.parquet", samples=1)
    argv[argv.index("--model-spec") + 1] = model_spec(model_dir, n_layers=N_LAYERS - 2)
    argv[argv.index("--layer-hi") + 1] = str(N_LAYERS - 2)
    proc = subprocess.run(factrace_cmd(*argv), check=False, capture_output=True, text=True, env=subprocess_env(),
                          timeout=300)
    assert proc.returncode != 0
    assert f"`models.tiny.n_layers` is {N_LAYERS - 2} in the config but the loaded model has {N_LAYERS}" in proc.stderr
    assert not (tmp_path / "t.parquet").exists()


def test_speech_checkpoints_are_checked_with_the_exact_key(tmp_path):
    """Issue 11 (8): ctc_model and units.checkpoints_dir are checked before any job (the plan-time check reads
    factrace.models.checkpoints.required_checkpoints); the message names the key, the path and what is expected."""
    from factrace.core.config import with_defaults
    from factrace.models.checkpoints import checkpoint_problems

    def config(speech: dict) -> dict:  # a built model only: the speech section's checkpoints alone
        return with_defaults({"facts": {"path": "f.json"}, "tracing": {}, "speech": speech, "models": {
            "m": {"loader": "hf", "n_layers": 1, "convert": "smollm2-gguf"}}})

    cfg = config({
        "enabled": True, "alignment": {"method": "hubert-ctc", "ctc_model": str(tmp_path / "ctc")},
        "units": {"backend": "spiritlm", "checkpoints_dir": str(tmp_path / "spiritlm")}})
    problems = checkpoint_problems(cfg)
    assert len(problems) == 2
    assert problems[0].startswith(f"`speech.alignment.ctc_model`: {tmp_path / 'ctc'} not found; expected the HuBERT")
    assert problems[1].startswith(f"`speech.units.checkpoints_dir`: {tmp_path / 'spiritlm'} not found")
    (tmp_path / "ctc").mkdir()
    (tmp_path / "spiritlm").mkdir()
    problems = checkpoint_problems(cfg)
    assert "lacks config.json" in problems[0]
    assert "mhubert_base_25hz.pt" in problems[1]
    for f in ("config.json", "vocab.json", "preprocessor_config.json"):
        (tmp_path / "ctc" / f).write_text("{}")
    hub = tmp_path / "spiritlm" / "speech_tokenizer" / "hubert_25hz"
    hub.mkdir(parents=True)
    for f in ("mhubert_base_25hz.pt", "L11_quantizer_500.pt"):
        (hub / f).touch()
    assert checkpoint_problems(cfg) == []
    # the offline default needs none of them
    assert checkpoint_problems(config({"enabled": True, "alignment": {"method": "espeak-onsets"},
                                       "units": {"backend": "mfcc-kmeans"}})) == []


# ---------------------------------------------------------------------------- non-ASCII, digits, symbols: VALID

UNUSUAL = [
    ("Zürich", "Zürich is a city in", "Switzerland"),
    ("São Paulo", "São Paulo is a city in", "Brazil"),
    ("Gdańsk", "The port of Gdańsk lies in", "Poland"),
    ("Ørsted", "Ørsted has its headquarters in", "Denmark"),
    ("Beyoncé", "Beyoncé was born in", "Houston"),
    ("7-Eleven", "7-Eleven was founded in", "Dallas"),
    ("AT&T", "AT&T is headquartered in", "Dallas"),
    ("3M", "The company 3M makes", "Post-it notes"),
    ("Apollo 11", "Apollo 11 landed on the", "Moon"),
    ("the 1990s", "Grunge music was popular in the 1990s in", "Seattle"),
    ("$5 bill", "The $5 bill shows", "Abraham Lincoln"),
    ("Rome’s Colosseum", "Rome’s Colosseum is in", "Italy"),
]


def test_non_ascii_digits_symbols_are_valid(tmp_path):
    from factrace.speech.align.normalise import CTC_ALPHABET, normalise

    records = [{"known_id": i, "subject": s, "attribute": a, "template": p.replace(s, "{}"), "prediction": a,
                "prompt": p, "relation_id": "P0"} for i, (s, p, a) in enumerate(UNUSUAL)]
    facts = load_facts(_facts_file(tmp_path, records))
    assert [(f.subject, f.prompt, f.attribute) for f in facts] == [(s, p, a) for s, p, a in UNUSUAL]
    for f in facts:
        norm = normalise(f.prompt)
        assert norm.transcript and not norm.dropped, f
        assert set(norm.transcript) <= CTC_ALPHABET | {"|"}
        start = f.prompt.index(f.subject)
        assert norm.words_in_span(start, start + len(f.subject)), f  # the subject is spoken
        assert normalise(f.attribute).transcript


# ------------------------------------------------------------------------------------------------------ audio
SR = 16000


def _tone(seconds: float, sr: int, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 24000, 48000])
def test_other_sample_rates_are_resampled(tmp_path, sr):
    from factrace.speech import audio

    p = tmp_path / f"{sr}.wav"
    sf.write(p, _tone(0.5, sr), sr)
    wave, notes = audio.prepare_audio(p)
    assert abs(len(wave) - SR // 2) <= 1
    assert [n for n in notes if n.startswith("sample-rate:")] == [f"sample-rate: {p} is {sr} Hz; resampled to 16000 Hz"]
    # the tone survives resampling (no aliasing or silence): about 0.3 / sqrt(2) RMS
    assert abs(float(np.sqrt(np.mean(wave[400:-400] ** 2))) - 0.3 / np.sqrt(2)) < 0.02


def test_multichannel_and_rate_and_clipping_together(tmp_path):
    from factrace.speech import audio

    p = tmp_path / "six.wav"
    x = np.clip(_tone(0.5, 22050, amp=2.0), -1, 1)
    sf.write(p, np.stack([x] * 6, axis=1), 22050, subtype="FLOAT")
    wave, notes = audio.prepare_audio(p)
    assert wave.ndim == 1 and abs(len(wave) - SR // 2) <= 1
    assert {n.split(":")[0] for n in notes} == {"stereo", "clipped", "sample-rate"}
    assert any("6 channels" in n for n in notes)


def test_silent_stereo_and_near_silent_noise_are_fatal(tmp_path):
    from factrace.speech import audio

    p = tmp_path / "silent_stereo.wav"
    sf.write(p, np.zeros((SR, 2), np.float32), SR)
    with pytest.raises(audio.BadAudioError, match="RMS") as err:
        audio.prepare_audio(p)
    assert err.value.path == str(p) and "tts" in err.value.fix
    q = tmp_path / "hiss.wav"
    sf.write(q, (1e-5 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32), SR, subtype="FLOAT")
    with pytest.raises(audio.BadAudioError, match="silent|RMS"):
        audio.prepare_audio(q)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples_are_fatal(tmp_path, bad):
    from factrace.speech import audio

    p = tmp_path / "nan.wav"
    x = _tone(0.5, SR)
    x[100:110] = bad
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(audio.BadAudioError) as err:
        audio.prepare_audio(p)
    msg = str(err.value)
    assert str(p) in msg and "10 NaN or infinite samples" in msg and "Fix:" in msg and "tts" in msg


def test_single_channel_2d_is_plain_mono_and_missing_file_names_the_rule(tmp_path):
    from factrace.speech import audio

    p = tmp_path / "one.wav"
    sf.write(p, _tone(0.25, SR)[:, None], SR)
    wave, notes = audio.prepare_audio(p)
    assert wave.ndim == 1 and notes == []
    with pytest.raises(audio.BadAudioError, match="does not exist. Fix: rerun the tts rule"):
        audio.prepare_audio(tmp_path / "missing.wav")


# ---------------------------------------------------------------------------------------- text that cannot align


class _UniformEmitter:
    """A stand-in CTC model: 50 frames per second, every label equally likely."""

    labels: ClassVar[list[str]] = ["<pad>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"]
    blank_id, separator, sample_rate, model_id, device, dtype = 0, "|", SR, "uniform-test", "cpu", "float32"

    @property
    def vocab(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.labels)}

    def __call__(self, wave, sr):
        n = max(1, len(wave) // 320)
        return np.full((n, len(self.labels)), -np.log(len(self.labels)), dtype=np.float32)


@pytest.mark.parametrize(("prompt", "seconds", "reason"), [
    ("Москва находится в", 2.0, "no speakable words"),
    ("?!", 2.0, "no speakable words"),
    ("The capital city of Italy is", 0.05, "cannot fit"),
])
def test_align_ctc_raises_alignment_error(prompt, seconds, reason):
    from factrace.speech.align.ctc import AlignmentError
    from factrace.speech.align.emissions import align_ctc

    with pytest.raises(AlignmentError, match=reason):
        align_ctc(_tone(seconds, SR), SR, prompt, _UniformEmitter(), known_id=1)


def test_unalignable_text_is_a_recorded_skip_through_alignment_and_token_map(tmp_path, monkeypatch):
    from factrace.speech.align import emissions
    from factrace.speech.align import stage as align_stage
    from factrace.speech.units import stages as units_stages

    prompts = pd.DataFrame({
        "known_id": [0, 1, 2], "subject": ["Italy", "Москва", "Rome"], "attribute": ["Rome", "Russia", "Italy"],
        "prompt": ["The capital city of Italy is", "Москва находится в", "The city of Rome is located in"],
        "template": ["The capital city of {} is", "{} находится в", "The city of {} is located in"],
        "relation_id": ["P36", "P17", "P17"], "shard": [0, 0, 0],
    })
    io.write_table(prompts, tmp_path / "prompts.parquet", "prompts", Provenance(stage="shard"))
    seconds = {0: 2.0, 1: 2.0, 2: 0.05}  # fact 2: audio far too short for its words
    rows = []
    for kid, s in seconds.items():
        wav = tmp_path / f"{kid}.wav"
        sf.write(wav, _tone(s, SR), SR)
        rows.append({"known_id": kid, "field": "prompt", "path": str(wav), "sample_rate": SR, "duration_s": s,
                     "backend": "test", "sha256": ""})
    io.write_table(pd.DataFrame(rows), tmp_path / "audio.parquet", "audio", Provenance(stage="tts"))
    monkeypatch.setattr(emissions, "load_emitter", lambda *a, **k: _UniformEmitter())

    align_stage.run_align_ctc(tmp_path / "audio.parquet", tmp_path / "prompts.parquet",
                              tmp_path / "align.parquet", tmp_path / "no-model-needed")
    align = io.read_table(tmp_path / "align.parquet", "alignment")
    status = align.groupby("known_id")["status"].agg(set).to_dict()
    assert status == {0: {"ok"}, 1: {"failed"}, 2: {"failed"}}
    reasons = align.set_index("known_id")["reason"]
    assert "no speakable words" in reasons[1] and "cannot fit" in reasons[2]

    # the token map records the skip with the alignment's reason (and maps the aligned fact)
    units = pd.DataFrame({"known_id": [0, 1, 2], "units": [list(range(50))] * 2 + [[1]],
                          "run_lengths": [[1] * 50] * 2 + [[1]], "n_frames": [50, 50, 1], "rate_hz": 25.0,
                          "backend": "test", "dedup": False, "status": "ok", "reason": ""})
    io.write_table(units, tmp_path / "tokens.parquet", None, Provenance(stage="speech_tokens"))
    tok_dir = save_tiny_model(tmp_path / "tok", n_layers=1)
    units_stages.run_token_map(tmp_path / "prompts.parquet", tmp_path / "align.parquet", tmp_path / "tokens.parquet",
                               tok_dir, "tiny", tmp_path / "map.parquet")
    tmap = io.read_table(tmp_path / "map.parquet", "token_map")
    by = tmap.groupby("known_id")
    assert set(by.get_group(0)["status"]) == {"ok"} and len(by.get_group(0)) == 6
    for kid, why in ((1, "no speakable words"), (2, "cannot fit")):
        row = by.get_group(kid)
        assert len(row) == 1 and row["status"].item() == "failed"
        assert row["reason"].item().startswith("no aligned words (") and why in row["reason"].item()


# ---------------------------------------------------------------------------- the model never says the attribute


def test_model_that_never_produces_the_attribute(tmp_path):
    import torch
    from factrace.filtering.generate import REASON_NO_MATCH, filter_facts
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = save_tiny_model(tmp_path / "model", n_layers=2)
    model = AutoModelForCausalLM.from_pretrained(d).eval()
    tok = AutoTokenizer.from_pretrained(d)
    # attributes outside the model's vocabulary: whatever it generates, it cannot say them
    prompts = pd.DataFrame({"known_id": [4, 2], "prompt": ["The capital city of Italy is", "The city of Rome is"],
                            "attribute": ["Atlantis", "Narnia"], "subject": ["Italy", "Rome"]})
    with torch.no_grad():
        df = filter_facts(model, tok, prompts, "tiny", "t2t", max_new_tokens=4)
    assert df["known_id"].tolist() == [4, 2]
    assert not df["kept"].any()
    assert (df["match"] == "none").all() and (df["reason"] == REASON_NO_MATCH).all()
    assert all(isinstance(g, str) for g in df["generation"])  # what it said instead is recorded


# -------------------------------------------------------------------------------------------------------- config


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wf"))


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda c: c["tracing"].update(sample=10), "`tracing.sample` is not a config key; did you mean `tracing.samples`?"),
    (lambda c: c["tracing"].update(samples="ten"), "`tracing.samples` is 'ten': expected an integer"),
    (lambda c: c["models"]["smollm2"].update(n_layers="30"), "`models.smollm2.n_layers` is '30': expected an integer"),
], ids=["unknown-key", "wrong-type", "wrong-type-model"])
def test_bad_config_names_the_key(workflow_copy, edit, expected, request):
    cfg = yaml.safe_load((workflow_copy / "config" / "config.yaml").read_text())
    edit(cfg)
    bad = workflow_copy / "config" / f"bad-{request.node.callspec.id}.yaml"
    bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = snakemake(workflow_copy, "-n", "--configfile", str(bad.relative_to(workflow_copy)))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"invalid config (config/config.yaml < {bad.relative_to(workflow_copy)})" in out, out[-3000:]
    assert f"{bad.relative_to(workflow_copy)}: {expected}" in out, out[-3000:]


def test_a_dry_run_says_which_facts_will_be_skipped(workflow_copy):
    """Issue 24: a dry run (no job runs, so no skipped_facts table) still names the facts file's bad rows."""
    from tiny_run import BAD_ROWS, FACTS

    facts = workflow_copy / "facts-bad.json"
    facts.write_text(json.dumps(FACTS + BAD_ROWS))
    proc = snakemake(workflow_copy, "-n", "--config", f"facts={{path: {facts.name}}}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert f"2 row(s) of {facts.name} will be skipped" in out, out[-3000:]
    assert "(known_id=8)" in out and "(known_id=9)" in out


# -------------------------------------------------------------------------------------------- shell lines


def test_every_shell_interpolation_is_quoted():
    """Issue 11 (11): config strings reached the shell unquoted (`2> {log}`, `{params.main}`, multi-argument
    params built as one string). Every `{...}` of every rule's shell line must be `:q` (lists quote element-wise);
    the drill (tests/test_drills.py) runs the workflow under `a b;touch INJECTED;c/`."""
    unquoted = []
    for path in sorted((Path(__file__).resolve().parents[1] / "workflow" / "rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        in_shell = False
        for i, line in enumerate(lines, 1):
            text = line.strip()
            if text == "shell:":
                in_shell = True
                continue
            if in_shell and not text.startswith(('"', "'")):
                in_shell = False
            if in_shell:
                unquoted += [f"{path.name}:{i}: {m}" for m in re.findall(r"(?<!\{)\{[^{}]+\}(?!\})", text)
                             if not m.endswith(":q}")]
    assert not unquoted, unquoted


def test_factrace_in_shell_lines_is_the_running_interpreter():
    """Issue 11 (12): rules called `factrace` from PATH (exit 127 without an activated venv)."""
    text = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    assert "shell.prefix(" in text and "sys.executable" in text and '-m factrace "$@"' in text
