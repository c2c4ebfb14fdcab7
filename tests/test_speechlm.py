"""Speech-text LMs: SpiritLM's checkpoint layout and prompt ids, speech filtering, S->T tracing inputs, gap.

Everything runs on tiny random Llamas saved to disk (no downloads): one in SpiritLM's layout with SpiritLM's
marker ids ([Text]=32000, [Speech]=32001, [Hu0]=32002..), one in the offline speech LM's layout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from factrace.core import io
from factrace.models.load import ModelSpec, load_model
from factrace.speechlm.prompts import (
    markers_from_tokenizer,
    speech_prompt_ids,
    spiritlm_prompt_string,
    text_prompt_ids,
)

CPU = {"dtype": "float32", "device": "cpu"}  # a model spec's dtype and device (no defaults of their own)
SPIRITLM_CPU = {**CPU, "extra": {"speech_input": "hubert"}}

WORDS = ["the", "capital", "of", "france", "is", "paris", "eiffel", "tower", "in", "located", "city"]


# ------------------------------------------------------------------------------------------ SpiritLM layout
@pytest.fixture(scope="module")
def spiritlm_dir(tmp_path_factory):
    """A tiny Llama in SpiritLM's checkpoint layout (config.json, generation_config.json, pytorch_model.bin,
    special_tokens_map.json, tokenizer_config.json) with SpiritLM's ids: base vocabulary 0..31999 (<unk>, <s>,
    </s>, some words, fillers), then [Text], [Speech], [Hu0..Hu9]."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("spirit-lm-base-7b")
    base = ["<unk>", "<s>", "</s>", *WORDS]
    base += [f"<filler{i}>" for i in range(32000 - len(base))]
    markers = ["[Text]", "[Speech]"] + [f"[Hu{i}]" for i in range(10)]
    vocab = {t: i for i, t in enumerate(base + markers)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tk.add_special_tokens([AddedToken(t, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    tk.add_tokens([AddedToken(t, normalized=False, special=False) for t in markers])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg)
    cfg.save_pretrained(d)
    GenerationConfig(bos_token_id=1, eos_token_id=2).save_pretrained(d)
    torch.save(model.state_dict(), d / "pytorch_model.bin")
    return d


def test_spiritlm_layout_loads_with_spiritlm_ids(spiritlm_dir) -> None:
    loaded = load_model(ModelSpec("spiritlm-tiny", "spiritlm", str(spiritlm_dir), **SPIRITLM_CPU))
    m = markers_from_tokenizer(loaded.tokenizer)
    assert (m.text, m.speech, m.units[0], m.units[9], m.n_units, m.bos) == (32000, 32001, 32002, 32011, 10, 1)
    assert m.n_prefix_speech == 2 and m.n_prefix_text == 2
    assert loaded.model.config.model_type == "llama" and len(loaded.weights_sha256) == 64


def test_speech_prompt_is_spiritlm_layout(spiritlm_dir) -> None:
    loaded = load_model(ModelSpec("spiritlm-tiny", "spiritlm", str(spiritlm_dir), **SPIRITLM_CPU))
    tok = loaded.tokenizer
    m = markers_from_tokenizer(tok)
    units = [3, 0, 7, 9, 3]
    ids = speech_prompt_ids(units, m)
    assert ids == [1, 32001, 32005, 32002, 32009, 32011, 32005, 32000]
    # SpiritLM tokenises the prompt string "[Speech][Hu3]...[Text]" with add_bos_token=True
    assert ids == tok(spiritlm_prompt_string(units))["input_ids"]
    with pytest.raises(ValueError):
        speech_prompt_ids([10], m)
    tp = text_prompt_ids(tok, "The capital of France is", m)
    assert tp.ids == tok("[Text]The capital of France is")["input_ids"]
    assert tp.ids[:2] == [1, 32000] and tp.n_prefix == 2 and tp.offsets[:2] == [(0, 0), (0, 0)]


# ------------------------------------------------------------------------------------------ offline-style LM
FACTS = pd.DataFrame({
    "known_id": [10, 11, 12, 13],
    "subject": ["France", "Eiffel Tower", "Paris", "France"],
    "attribute": ["Paris", "Paris", "France", "Paris"],
    "prompt": ["The capital of France is", "The Eiffel Tower is located in", "Paris is a city in",
               "The capital of France is"],
    "template": ["The capital of {} is", "The {} is located in", "{} is a city in", "The capital of {} is"],
    "relation_id": ["P36", "P131", "P17", "P36"],
    "shard": [1, 1, 1, 1],
})
N_UNITS = 12


@pytest.fixture(scope="module")
def speech_lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("speechlm")
    write_tiny_speech_lm(d, layers=3)
    return load_model(ModelSpec("speechlm", "spiritlm", str(d), **SPIRITLM_CPU))


def write_tiny_speech_lm(d, layers: int):
    """A tiny random speech LM in the offline layout (word-level tokenizer of FACTS with N_UNITS units) saved in
    ``d``; returns its tokenizer."""
    from factrace.models.offline_speechlm.build import build_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_tokenizer(list(FACTS["prompt"]) + list(FACTS["attribute"]) + ["a"], N_UNITS)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20.0)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return tok


def _speech_tables(tmp_path):
    """Speech tokens and token maps: 10, 11 fine; 12 failed token map; 13 has no speech tokens."""
    rng = np.random.default_rng(0)
    units = {10: rng.integers(0, N_UNITS, 20), 11: rng.integers(0, N_UNITS, 24), 12: rng.integers(0, N_UNITS, 15)}
    sp = pd.DataFrame({
        "known_id": list(units), "units": [[int(x) for x in u] for u in units.values()],
        "run_lengths": [[1] * len(u) for u in units.values()], "n_frames": [len(u) for u in units.values()],
        "rate_hz": 25.0, "backend": "mfcc-kmeans", "dedup": True, "status": "ok", "reason": "",
    })
    rows = []
    # 10: "the capital of france is" -> words 0..4; subject "france" = token 3, speech [12, 16)
    for i, (w, a, b) in enumerate([("the", 1, 3), ("capital", 3, 7), ("of", 8, 10), ("france", 12, 16),
                                   ("is", 16, 19)]):
        rows.append((10, i, w, a, b, w == "france"))
    # 11: "the eiffel tower is located in" -> subject tokens 1, 2 ("eiffel tower"), speech [4, 12)
    for i, (w, a, b) in enumerate([("the", 0, 2), ("eiffel", 4, 8), ("tower", 8, 12), ("is", 13, 15),
                                   ("located", 15, 21), ("in", 21, 23)]):
        rows.append((11, i, w, a, b, w in ("eiffel", "tower")))
    tm = pd.DataFrame(rows, columns=["known_id", "text_token_index", "text_token", "speech_start", "speech_end",
                                     "is_subject"])
    tm["model"] = "speechlm"
    tm["status"], tm["reason"] = "ok", ""
    failed = pd.DataFrame([{"known_id": 12, "model": "speechlm", "text_token_index": -1, "text_token": "",
                            "speech_start": -1, "speech_end": -1, "is_subject": False, "status": "failed",
                            "reason": "no aligned words"}])
    tm = pd.concat([tm, failed], ignore_index=True)
    sp_path, tm_path = tmp_path / "speech_tokens.parquet", tmp_path / "token_map.parquet"
    io.write_table(sp, sp_path, None)
    io.write_table(tm, tm_path, "token_map")
    return sp_path, tm_path, units


def test_filter_speech_rows_and_reasons(speech_lm, tmp_path) -> None:
    from factrace.filtering.modality import filter_speech, filter_text, greedy_ids

    sp_path, tm_path, units = _speech_tables(tmp_path)
    df = filter_speech(speech_lm, FACTS, "speechlm", str(sp_path), str(tm_path), max_new_tokens=3)
    df = df.set_index("known_id")
    assert list(df.index) == [10, 11, 12, 13]
    assert df.loc[12, "reason"].startswith("token map failed") and not df.loc[12, "kept"]
    assert df.loc[13, "reason"] == "no speech tokens" and not df.loc[13, "kept"]
    paris = speech_lm.tokenizer.convert_tokens_to_ids("paris")
    assert df.loc[10, "target_token_id"] == paris and df.loc[11, "target_token_id"] == paris
    m = markers_from_tokenizer(speech_lm.tokenizer)
    gen = greedy_ids(speech_lm, speech_prompt_ids(units[10], m), 3, m)
    assert df.loc[10, "generation"] == gen
    assert "[" not in gen  # markers and units are suppressed in text output
    t = filter_text(speech_lm, FACTS, "speechlm", max_new_tokens=3)
    assert (t["modality"] == "t2t").all() and list(t["target_token_id"]) == [paris, paris,
                                                                          speech_lm.tokenizer.convert_tokens_to_ids("france"), paris]


def test_speech_inputs_prefix_shift_and_mapping(speech_lm, tmp_path) -> None:
    from factrace.speechlm.inputs import speech_trace_inputs, text_trace_inputs_speechlm

    sp_path, tm_path, units = _speech_tables(tmp_path)
    kept = pd.DataFrame({"known_id": [10, 11], "target_token_id": [5, 6]}).set_index("known_id")
    rows = FACTS[FACTS["known_id"].isin([10, 11])]
    pairs = speech_trace_inputs(speech_lm, rows, kept, str(sp_path), [str(tm_path)], 0)
    (a, ta), (b, tb) = pairs
    m = markers_from_tokenizer(speech_lm.tokenizer)
    assert (ta, tb) == (5, 6)
    assert a.corrupt == (2 + 12, 2 + 16) and b.corrupt == (2 + 4, 2 + 12)  # BOS + [Speech]
    assert a.input_ids[0, 0] == m.bos and a.input_ids[0, 1] == m.speech and a.input_ids[0, -1] == m.text
    assert a.n_tokens == 20 + 3 and a.text_subject == (3, 4) and a.n_text_tokens == 5
    assert b.text_subject == (1, 3) and b.n_text_tokens == 6
    tti = a.text_token_index
    assert tti[:2] == [-1, -1] and tti[-1] == 4  # markers unmapped, final [Text] -> last text token
    assert tti[2 + 0] == -1 and tti[2 + 1] == 0 and tti[2 + 12] == 3 and tti[2 + 15] == 3 and tti[2 + 11] == -1
    assert a.tokens[2] == f"[Hu{units[10][0]}]"
    t = text_trace_inputs_speechlm(speech_lm, 11, FACTS.loc[1, "prompt"], FACTS.loc[1, "subject"])
    assert t.input_ids[0, :2].tolist() == [m.bos, m.text] and t.corrupt == (3, 5)  # "the" at 2; eiffel tower 3, 4


def test_speech_corruption_touches_only_subject_speech_tokens(speech_lm, tmp_path) -> None:
    from factrace.models.families import Layout
    from factrace.speechlm.inputs import speech_trace_inputs
    from factrace.tracing.method import make_noise
    from factrace.tracing.patching import add_noise_hook, hooked, trace_prompt
    from factrace.tracing.scale import noise_scale_speech

    sp_path, tm_path, units = _speech_tables(tmp_path)
    kept = pd.DataFrame({"known_id": [11], "target_token_id": [5]}).set_index("known_id")
    (inp, target), = speech_trace_inputs(speech_lm, FACTS[FACTS["known_id"] == 11], kept, str(sp_path),
                                         str(tm_path), 0)
    s, e = inp.corrupt
    layout = Layout.of(speech_lm.model)
    seen = {}

    def capture(_m, _i, out):
        seen["emb"] = out.detach().clone()

    noise = make_noise(3, e - s, speech_lm.model.config.hidden_size, 1.0, seed=1)
    ids = inp.input_ids.expand(3, -1)
    with torch.no_grad():
        clean = layout.embed(inp.input_ids)[0]
        handles = [add_noise_hook(layout.embed, torch.arange(3), s, noise), layout.embed.register_forward_hook(capture)]
        with hooked(handles):
            speech_lm.model(input_ids=ids, use_cache=False)
    diff = (seen["emb"] - clean[None]).abs().amax(dim=(0, 2))
    changed = torch.nonzero(diff > 0).flatten().tolist()
    assert changed == list(range(s, e))
    m = markers_from_tokenizer(speech_lm.tokenizer)
    assert inp.input_ids[0, s:e].tolist() == [m.units[u] for u in units[11][4:12]]
    res = trace_prompt(speech_lm.model, inp.input_ids, inp.corrupt, target, noise, window=10, kinds=("hidden",), max_rows=64)
    assert res.restored["hidden"].shape == (3, inp.n_tokens)
    ns = noise_scale_speech(speech_lm, FACTS, [str(sp_path)], [str(tm_path)], 3.0, 0)
    assert ns["n_tokens"] == (16 - 12) + (12 - 4) and ns["n_skipped"] == 2
    assert ns["scale"] == pytest.approx(3.0 * ns["std"])


def test_modality_gap_matches_hidden_states(speech_lm, tmp_path) -> None:
    from factrace.gap.measure import modality_gap
    from factrace.speechlm.inputs import speech_trace_inputs

    sp_path, tm_path, _ = _speech_tables(tmp_path)
    df = modality_gap(speech_lm, FACTS, str(sp_path), str(tm_path), "speechlm")
    n_layers = speech_lm.model.config.num_hidden_layers
    assert len(df) == 2 * n_layers * 2 and set(df["known_id"]) == {10, 11}
    assert set(df["position_kind"]) == {"last_subject", "last"}
    assert df["cosine"].between(-1.0001, 1.0001).all() and (df["euclidean"] >= 0).all()
    # block outputs of layers < last equal HF's hidden_states[layer + 1] (the last one is after the final norm)
    kept = pd.DataFrame({"known_id": [10], "target_token_id": [0]}).set_index("known_id")
    (inp, _), = speech_trace_inputs(speech_lm, FACTS[FACTS["known_id"] == 10], kept, str(sp_path), str(tm_path), 0)
    m = markers_from_tokenizer(speech_lm.tokenizer)
    from factrace.speechlm.inputs import text_trace_inputs_speechlm

    t = text_trace_inputs_speechlm(speech_lm, 10, FACTS.loc[0, "prompt"], FACTS.loc[0, "subject"], m)
    with torch.no_grad():
        hs = speech_lm.model(input_ids=inp.input_ids, output_hidden_states=True).hidden_states
        ht = speech_lm.model(input_ids=t.input_ids, output_hidden_states=True).hidden_states
    a, b = ht[1][0, t.corrupt[1] - 1], hs[1][0, inp.corrupt[1] - 1]
    row = df[(df["known_id"] == 10) & (df["layer"] == 0) & (df["position_kind"] == "last_subject")].iloc[0]
    assert row["euclidean"] == pytest.approx(float((a - b).norm()), rel=1e-4)
    assert row["cosine"] == pytest.approx(float(torch.nn.functional.cosine_similarity(a, b, dim=0)), abs=1e-5)


def test_subject_margin_widens_the_corrupted_speech_range_within_the_prompt(speech_lm, tmp_path) -> None:
    """`tracing.subject_margin_s2t`: the noise scale and the traces corrupt the subject's speech range plus the
    margin on each side, clipped to the speech tokens (never the markers); categories keep the token map's words."""
    from factrace.speech.token_map import widen
    from factrace.speechlm.inputs import speech_trace_inputs
    from factrace.tracing.scale import noise_scale_speech

    assert widen(4, 12, 20, 2) == (2, 14) and widen(1, 19, 20, 3) == (0, 20) and widen(4, 12, 20, 0) == (4, 12)
    with pytest.raises(ValueError):
        widen(4, 12, 20, -1)
    sp_path, tm_path, _ = _speech_tables(tmp_path)
    kept = pd.DataFrame({"known_id": [10, 11], "target_token_id": [5, 6]}).set_index("known_id")
    rows = FACTS[FACTS["known_id"].isin([10, 11])]
    (a, _), (b, _) = speech_trace_inputs(speech_lm, rows, kept, str(sp_path), str(tm_path), 3)
    assert a.corrupt == (2 + 12 - 3, 2 + 19) and b.corrupt == (2 + 4 - 3, 2 + 12 + 3)
    (a0, _), _ = speech_trace_inputs(speech_lm, rows, kept, str(sp_path), str(tm_path), 0)
    assert a.text_subject == a0.text_subject and a.text_token_index == a0.text_token_index
    ns = noise_scale_speech(speech_lm, FACTS, [str(sp_path)], [str(tm_path)], 3.0, 3)
    assert ns["n_tokens"] == (19 - 9) + (15 - 1)
