"""Speech back half: CTC emissions (tiny HuBERT), speech units, token map, figures, stage entry points, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from factrace.core import contracts
from factrace.core.io import read_table, write_table
from factrace.speech.align import ctc
from factrace.speech.token_map import (
    TokenMapError,
    map_tokens,
    resolve,
    seconds_to_units,
    subject_speech_range,
    token_map_rows,
)
from factrace.speech.units import tokenizer as units

SR = 16000

# ---------------------------------------------------------------- helpers


def offsets_of(text: str, pieces: list[str]) -> list[tuple[int, int]]:
    """Offsets of consecutive pieces of ``text`` (pieces may start with spaces, which are excluded)."""
    out, pos = [], 0
    for p in pieces:
        start = text.index(p.strip() or p, pos) if p.strip() else pos
        end = start + len(p.strip()) if p.strip() else pos + len(p)
        out.append((start, end))
        pos = end
    return out


def speechy(seconds: float, seed: int = 0) -> np.ndarray:
    """A deterministic, varied test signal: chirps and noise bursts."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = 200 + 1500 * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t))
    wave = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / SR) + 0.05 * rng.standard_normal(t.size)
    return (wave * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


# ---------------------------------------------------------------- token map

PROMPT = "The Eiffel Tower is in"
SUBJECT = "Eiffel Tower"
TOKENS = ["The", " Eif", "fel", " Tower", " is", " in"]
WORDS = [("The", 0.0, 0.2), ("Eiffel", 0.2, 0.6), ("Tower", 0.6, 1.0), ("is", 1.0, 1.2), ("in", 1.2, 1.4)]


def test_eq2_and_tolerance():
    assert seconds_to_units(0.12, 0.28) == (3, 7)  # 0.12*25 is 3.0000000000000004 in floats
    assert seconds_to_units(0.13, 0.27) == (3, 7)


def test_map_without_dedup_subword_split():
    offs = offsets_of(PROMPT, TOKENS)
    ranges, subj = map_tokens(PROMPT, SUBJECT, offs, WORDS, n_frames=36)
    # "Eiffel" 0.2-0.6 s split by characters: "Eif" 0.2-0.4 (frames 5-10), "fel" 0.4-0.6 (frames 10-15)
    assert ranges == [(0, 5), (5, 10), (10, 15), (15, 25), (25, 30), (30, 35)]
    assert subj == [False, True, True, True, False, False]


def test_boundary_frame_goes_to_later_token():
    words = [("The", 0.0, 0.21), ("Eiffel", 0.21, 0.6), ("Tower", 0.6, 1.0), ("is", 1.0, 1.2), ("in", 1.2, 1.4)]
    ranges, _ = map_tokens(PROMPT, SUBJECT, offsets_of(PROMPT, TOKENS), words, n_frames=36)
    # eq. 2 gives The [0, 6) and Eif [5, ...): frame 5 is shared and goes to the later token
    assert ranges[0] == (0, 5) and ranges[1][0] == 5


def test_map_with_dedup_runs_straddling_boundaries():
    offs = offsets_of(PROMPT, TOKENS)
    frames = np.array([1] * 4 + [2] * 3 + [3] * 8 + [4] * 10 + [5] * 11)  # 36 frames, 5 runs
    dedup, runs = units.deduplicate(frames)
    assert dedup.tolist() == [1, 2, 3, 4, 5] and runs.tolist() == [4, 3, 8, 10, 11]
    ranges, subj = map_tokens(PROMPT, SUBJECT, offs, WORDS, n_frames=36, run_lengths=runs)
    # run 1 (frames 4-6) straddles The|Eif; run 2 (frames 7-14) holds both "Eif" (to frame 9) and "fel";
    # run 4 (frames 25-35) holds "is" and "in": each token keeps at least one run, later tokens start after it
    assert ranges == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 5)]
    assert subject_speech_range(pd.DataFrame({
        "is_subject": subj, "speech_start": [r[0] for r in ranges], "speech_end": [r[1] for r in ranges],
    })) == (1, 4)
    for i in range(1, len(ranges)):
        assert ranges[i][0] >= ranges[i - 1][1]


def test_punctuation_and_special_tokens_get_empty_ranges():
    prompt = "Rome, the capital of Italy, is"
    tokens = ["<s>", "Rome", ",", " the", " capital", " of", " Italy", ",", " is"]
    offs = [(0, 0)] + offsets_of(prompt, tokens[1:])
    words = [("Rome", 0.1, 0.4), ("the", 0.5, 0.6), ("capital", 0.6, 1.0), ("of", 1.0, 1.1),
             ("Italy", 1.1, 1.5), ("is", 1.7, 1.9)]
    df = token_map_rows(7, "m", prompt, "Rome", tokens, offs, words, n_frames=50)
    contracts.check(df, "token_map")
    r = list(zip(df.speech_start, df.speech_end, strict=True))
    assert r[0] == (0, 0)  # BOS: empty at the start
    assert r[1] == (2, 10)  # Rome 0.1-0.4 s
    assert r[2] == (10, 10)  # "," empty, right after Rome
    assert r[7][0] == r[7][1] == r[6][1]  # second comma after Italy
    assert df.is_subject.tolist() == [False, True] + [False] * 7
    assert subject_speech_range(df) == (2, 10)


def test_digits_in_prompt_map_through_normalisation():
    prompt = "In 1990 Zürich hosted"
    tokens = ["In", " 19", "90", " Zürich", " hosted"]
    # the aligner reports spoken words (NINETEEN NINETY, ZURICH), the tokens are written
    words = [("IN", 0.0, 0.2), ("NINETEEN", 0.2, 0.6), ("NINETY", 0.6, 0.9), ("ZURICH", 0.9, 1.3),
             ("HOSTED", 1.3, 1.7)]
    ranges, subj = map_tokens(prompt, "Zürich", offsets_of(prompt, tokens), words, n_frames=45)
    # "1990" spans 0.2-0.9 s, split by characters; frame 22 (0.88-0.92 s) is shared and goes to "Zürich"
    assert ranges[1] == (5, 13) and ranges[2] == (13, 22)
    assert ranges[3] == (22, 32) and subj[3]


def test_aligner_words_that_differ_from_prompt_words():
    # an aligner that heard "Eifel" instead of "Eiffel" still times the subject (replace run)
    words = [("the", 0.0, 0.2), ("eifel", 0.2, 0.6), ("tower", 0.6, 1.0), ("is", 1.0, 1.2), ("in", 1.2, 1.4)]
    ranges, _ = map_tokens(PROMPT, SUBJECT, offsets_of(PROMPT, TOKENS), words, n_frames=36)
    assert ranges[1][0] == 5 and ranges[3] == (15, 25)


def test_errors():
    offs = offsets_of(PROMPT, TOKENS)
    with pytest.raises(TokenMapError, match="not found"):
        map_tokens(PROMPT, "Louvre", offs, WORDS, n_frames=36)
    with pytest.raises(TokenMapError, match="no speech tokens"):
        map_tokens(PROMPT, SUBJECT, offs, WORDS, n_frames=3)  # audio ends before the subject
    with pytest.raises(TokenMapError, match="run lengths"):
        map_tokens(PROMPT, SUBJECT, offs, WORDS, n_frames=36, run_lengths=[3, 3])
    with pytest.raises(TokenMapError, match="subject"):  # aligner missed the subject entirely
        map_tokens(PROMPT, SUBJECT, offs, [("The", 0.0, 0.2), ("is", 1.0, 1.2), ("in", 1.2, 1.4)], 36)


def test_resolve_rule():
    assert resolve([(0, 3), (2, 5), None, (5, 5), (4, 8)], 10) == [(0, 2), (2, 5), (5, 5), (5, 6), (6, 8)]


# ---------------------------------------------------------------- units


def test_deduplicate_roundtrip():
    u = np.array([3, 3, 1, 1, 1, 3, 2, 2])
    d, r = units.deduplicate(u)
    assert d.tolist() == [3, 1, 3, 2] and r.tolist() == [2, 3, 1, 2]
    assert units.expand(d, r).tolist() == u.tolist()
    d, r = units.deduplicate(np.array([], dtype=int))
    assert d.size == 0 and r.size == 0


def test_mfcc_rate_and_kmeans_resource(tmp_path):
    wave = speechy(1.01)
    feats = units.mfcc(wave, SR)
    assert feats.shape == (int(np.ceil(wave.size / 640)), 39)  # 25 Hz, last partial frame padded
    model = units.fit_mfcc_kmeans([(wave, SR), (speechy(0.8, seed=1), SR)], k=8, seed=3, n_init=1)
    codes = model.encode(wave, SR)
    assert codes.shape == (26,) and codes.dtype == np.int64 and codes.max() < 8
    path = model.save(tmp_path / "units.npz")
    again = units.MfccKMeansUnits.load(path)
    assert np.array_equal(again.encode(wave, SR), codes)
    assert again.rate_hz == 25.0 and again.n_units == 8
    # seeded: refitting gives the same centroids; 8 kHz input is resampled
    model2 = units.fit_mfcc_kmeans([(wave, SR), (speechy(0.8, seed=1), SR)], k=8, seed=3, n_init=1)
    assert np.allclose(model2.centroids, model.centroids)
    assert model.encode(wave[::2], 8000).shape == (26,)
    with pytest.raises(ValueError, match="k=100"):
        units.fit_mfcc_kmeans([(wave[:1000], SR)], k=100)


def test_spiritlm_backend_errors_name_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    with pytest.raises(units.SpeechTokenizerUnavailable, match="speech.units.checkpoints_dir"):
        units.spiritlm_checkpoint_paths(None)
    with pytest.raises(units.SpeechTokenizerUnavailable, match="mhubert_base_25hz.pt"):
        units.spiritlm_checkpoint_paths(tmp_path)
    hub = tmp_path / "speech_tokenizer" / "hubert_25hz"
    hub.mkdir(parents=True)
    for f in units.SPIRITLM_FILES:
        (hub / f).write_bytes(b"x")
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    assert units.spiritlm_checkpoint_paths(None)[0] == hub / "mhubert_base_25hz.pt"
    try:
        import spiritlm  # noqa: F401
    except ImportError:
        with pytest.raises(units.SpeechTokenizerUnavailable, match="package `spiritlm`"):
            units.load_speech_tokenizer("spiritlm", checkpoints_dir=tmp_path)
    with pytest.raises(units.SpeechTokenizerUnavailable, match="fit-units"):
        units.load_speech_tokenizer("mfcc-kmeans", units_npz=tmp_path / "none.npz", checkpoints_dir=None)


# ---------------------------------------------------------------- tiny HuBERT-CTC in the real on-disk layout

LS960_VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")


@pytest.fixture(scope="module")
def tiny_hubert_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import HubertConfig, HubertForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    d = tmp_path_factory.mktemp("hubert-large-ls960-ft")
    (d / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(LS960_VOCAB)}))
    Wav2Vec2CTCTokenizer(str(d / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                         word_delimiter_token="|").save_pretrained(str(d))
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR, padding_value=0.0, do_normalize=True,
                             return_attention_mask=False).save_pretrained(str(d))  # preprocessor_config.json
    cfg = HubertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8, 8), conv_kernel=(10, 8, 8), conv_stride=(5, 8, 8),  # 320 samples per frame, as HuBERT
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=len(LS960_VOCAB),
        pad_token_id=0, feat_extract_norm="layer", do_stable_layer_norm=True,
    )
    torch.manual_seed(0)
    HubertForCTC(cfg).save_pretrained(str(d))
    return d


def test_emissions_and_align_end_to_end(tiny_hubert_dir):
    from factrace.speech.align.emissions import align_ctc, load_emitter

    emitter = load_emitter(tiny_hubert_dir, device="cpu", dtype="auto")
    assert emitter.blank_id == 0 and emitter.separator == "|" and emitter.labels[:5] == LS960_VOCAB[:5]
    wave = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    em = emitter(wave, SR)
    assert em.dtype == np.float32 and em.shape[1] == len(LS960_VOCAB) and 45 <= em.shape[0] <= 50
    assert np.allclose(np.exp(em).sum(1), 1.0, atol=1e-4)
    df = align_ctc(wave, SR, "The capital of Zürich is", emitter, known_id=4)
    contracts.check(df, "alignment")
    assert df.word.tolist() == ["THE", "CAPITAL", "OF", "ZURICH", "IS"]
    assert (df.start_s < df.end_s).all() and (df.start_s.values[1:] >= df.end_s.values[:-1]).all()
    assert df.end_s.max() <= 1.0 and ((df.score > 0) & (df.score <= 1)).all()
    # frames -> seconds by eq. 1 with ratio = M / T
    with pytest.raises(ctc.AlignmentError, match="cannot fit"):
        align_ctc(wave[:1600], SR, "The capital of Zürich is", emitter)


# ---------------------------------------------------------------- figures


def test_figure_files(tmp_path):
    from factrace.analysis.figures.speech import plot_alignment, unit_onsets

    wave = speechy(1.0)
    words = pd.DataFrame({"word": ["THE", "CAT"], "start_s": [0.1, 0.5], "end_s": [0.4, 0.9], "score": [.8, .7]})
    k = np.log(np.random.default_rng(0).random((50, 7)))
    tm = pd.DataFrame({"speech_start": [0, 2], "speech_end": [2, 5], "is_subject": [False, True]})
    paths = plot_alignment(wave, SR, words, tmp_path / "fig" / "a", unit_starts_s=unit_onsets([3, 4, 5, 10, 3], 25),
                           trellis=k, path_frames=[(i, min(i // 8, 6)) for i in range(50)], token_ranges=tm,
                           run_lengths=[3, 4, 5, 10, 3])
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------- stages


@pytest.fixture()
def shard(tmp_path):
    prompts = pd.DataFrame({
        "known_id": [1, 2, 3], "subject": ["Eiffel Tower", "Rome", "Zürich"],
        "attribute": ["Paris", "Italy", "Switzerland"],
        "prompt": ["The Eiffel Tower is in", "Rome, the capital of", "Zürich is located in"],
        "template": ["The {} is in", "{}, the capital of", "{} is located in"], "relation_id": ["P1", "P2", "P3"],
        "shard": [0, 0, 0],
    })
    write_table(prompts, tmp_path / "prompts.parquet", "prompts")
    rows = []
    for kid, secs in [(1, 1.4), (2, 1.2), (3, 0.3)]:
        p = tmp_path / "audio" / f"{kid}.wav"
        p.parent.mkdir(exist_ok=True)
        sf.write(p, speechy(secs, seed=kid), SR)
        rows.append({"known_id": kid, "field": "prompt", "path": str(p), "sample_rate": SR, "duration_s": secs,
                     "backend": "test", "sha256": ""})
    write_table(pd.DataFrame(rows), tmp_path / "audio.parquet", "audio")
    align = pd.DataFrame([
        *[(1, i, w, s, e) for i, (w, s, e) in enumerate(WORDS)],
        *[(2, i, w, s, e) for i, (w, s, e) in enumerate(
            [("Rome", 0.1, 0.4), ("the", 0.5, 0.6), ("capital", 0.6, 1.0), ("of", 1.0, 1.1)])],
        *[(3, i, w, s, e) for i, (w, s, e) in enumerate([("Zürich", 0.5, 0.8), ("is", 0.8, 0.9)])],
    ], columns=["known_id", "word_index", "word", "start_s", "end_s"])
    align["score"], align["method"], align["reason"], align["aligned"] = 1.0, "test", "", True
    # rows as the offline aligners write them: untimed words with a reason
    untimed = pd.DataFrame([{"known_id": 2, "word_index": 4, "word": "--", "start_s": np.nan, "end_s": np.nan,
                             "score": np.nan, "method": "test", "reason": "punctuation only", "aligned": False}])
    align = pd.concat([align, untimed], ignore_index=True)
    write_table(align, tmp_path / "align.parquet", "alignment")
    # a word-level fast tokenizer with offsets, saved like a model directory
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(
        ["[UNK]", "The", "Eif", "##fel", "Tower", "is", "in", "Rome", ",", "the", "capital", "of", "Zürich",
         "located"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(tmp_path / "tok"))
    return tmp_path


def test_stages_fit_tokens_map_figures(shard):
    from factrace.analysis.figures.speech import run_speech_figures
    from factrace.speech.units.stages import run_fit_units, run_speech_tokens, run_token_map

    npz = run_fit_units([shard / "audio.parquet"], shard / "units.npz", k=6, seed=1)
    for dedup in (True, False):
        out = run_speech_tokens(shard / "audio.parquet", npz, shard / f"tok{dedup}.parquet", dedup=dedup,
                                backend="mfcc-kmeans", checkpoints_dir=None)
        st = read_table(out)
        assert st.known_id.tolist() == [1, 2, 3] and (st.status == "ok").all()
        for _, r in st.iterrows():
            assert sum(r.run_lengths) == r.n_frames == int(np.ceil(r.n_frames))
            assert len(r.units) == len(r.run_lengths) and r.rate_hz == 25.0 and r.backend == "mfcc-kmeans"
            if not dedup:
                assert set(r.run_lengths) == {1}
        tm = read_table(run_token_map(shard / "prompts.parquet", shard / "align.parquet", out, shard / "tok",
                                      "tiny", shard / f"map{dedup}.parquet"), "token_map")
        ok = tm[tm.status == "ok"]
        assert set(ok.known_id) == {1, 2}
        # fact 3: the subject is aligned after the end of its 0.3 s audio -> recorded, not dropped
        failed = tm[tm.known_id == 3]
        assert len(failed) == 1 and failed.status.iloc[0] == "failed" and "no speech tokens" in failed.reason.iloc[0]
        m1 = ok[ok.known_id == 1]
        assert m1.text_token.tolist() == ["The", "Eif", "##fel", "Tower", "is", "in"]
        assert m1.is_subject.tolist() == [False, True, True, True, False, False]
        assert (m1.speech_start.values[1:] >= m1.speech_end.values[:-1]).all()
        if not dedup:
            assert list(zip(m1.speech_start, m1.speech_end, strict=True))[:4] == [(0, 5), (5, 10), (10, 15), (15, 25)]
    figs = run_speech_figures(shard / "audio.parquet", shard / "align.parquet", shard / "tokTrue.parquet",
                              shard / "figs", n=1, token_map_parquet=shard / "mapTrue.parquet")
    assert len(figs) == 2 and all(p.stat().st_size > 0 for p in figs)


def test_usable_alignment_keeps_timed_rows_and_reasons():
    from factrace.speech.tables import usable_alignment

    df = pd.DataFrame({"known_id": [1, 1, 2], "word": ["a", ",", "b"], "start_s": [0.0, np.nan, np.nan],
                       "end_s": [0.1, np.nan, np.nan], "reason": ["", "punctuation", "eSpeak gave no event"],
                       "aligned": [True, False, False]})
    ok, reasons = usable_alignment(df)
    assert ok.word.tolist() == ["a"] and reasons == {1: "punctuation", 2: "eSpeak gave no event"}
