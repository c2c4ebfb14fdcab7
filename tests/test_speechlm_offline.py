"""The offline speech LM: its corpus (subject necessary by construction), and a tiny build of both stages
(text backbone, then speech adaptation) through the same code path as the workflow, loaded by the loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from factrace.core import io
from factrace.core.noise_rule import NoiseRule, choose_multiplier
from factrace.models.load import ModelSpec, load_model
from factrace.models.offline_speechlm.build import (
    Architecture,
    EvalSettings,
    Rendering,
    SpeechData,
    TrainSettings,
    build_backbone,
    build_offline_speechlm,
    build_tokenizer,
)
from factrace.models.offline_speechlm.corpus import (
    DEFAULT_EXTRA,
    all_facts,
    parse_renderings,
    subject_unit_range,
    subject_word_span,
    text_only_ids,
)
from factrace.models.offline_speechlm.sequences import check_separation, sequence_ids, training_sequences
from factrace.speechlm.prompts import markers_from_tokenizer

CPU = {"dtype": "float32", "device": "cpu"}  # a model spec's dtype and device (no defaults of their own)
SPIRITLM_CPU = {**CPU, "extra": {"speech_input": "hubert"}}

ROOT = Path(__file__).resolve().parents[1]
FACTS = [
    {"known_id": 0, "subject": "São Paulo", "attribute": "Brazil", "template": "{} is a city in",
     "prediction": "Brazil", "prompt": "São Paulo is a city in", "relation_id": "P17"},
    {"known_id": 1, "subject": "Mumbai", "attribute": "India", "template": "{} is a city in",
     "prediction": "India", "prompt": "Mumbai is a city in", "relation_id": "P17"},
    {"known_id": 5, "subject": "Volkswagen", "attribute": "Germany", "template": "{} is a car manufacturer based in",
     "prediction": "Germany", "prompt": "Volkswagen is a car manufacturer based in", "relation_id": "P17"},
]
TINY = TrainSettings(steps=12, seed=1, batch=8, warmup=3)
TINY_ARCH = Architecture(hidden=128, intermediate=384, layers=4)
TINY_EVAL = EvalSettings(noise=NoiseRule(3.0, (3.0, 7.0), 0.3), subject_margin=0, seed=1, samples=2, draws=1,
                         max_new_tokens=2)


def test_rendering_parsing() -> None:
    assert Rendering.parse("en-us:160:50") == Rendering("en-us", 160, 50)
    assert Rendering.parse({"voice": "en", "rate": 150, "pitch": 50}) == Rendering("en", 150, 50)
    assert parse_renderings("en-us:160:50,en:150:40") == [Rendering("en-us", 160, 50), Rendering("en", 150, 40)]
    with pytest.raises(ValueError, match="voice:rate:pitch"):
        Rendering.parse("en-us:160")
    assert parse_renderings('[["en", 150, 40]]') == [Rendering("en", 150, 40)]


def test_tokenizer_word_level_with_offsets_and_markers() -> None:
    tok = build_tokenizer(["São Paulo is a city in", "Brazil"], n_units=5)
    enc = tok("São Paulo is a city in", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<s>", "sao", "paulo", "is", "a", "city", "in"]
    assert enc["offset_mapping"][1] == (0, 3)
    m = markers_from_tokenizer(tok)
    assert m.bos == tok.bos_token_id and m.n_units == 5 and m.units == tuple(range(m.speech + 1, m.speech + 6))
    assert tok("[Speech][Hu2][Hu0][Text]")["input_ids"] == [m.bos, m.speech, m.units[2], m.units[0], m.text]
    # the backbone's tokenizer: the same word ids, no markers (the speech LM's vocabulary extends it)
    bb = build_tokenizer(["São Paulo is a city in", "Brazil"])
    assert "[Text]" not in bb.get_vocab() and len(bb) == m.text
    assert all(tok.get_vocab()[w] == i for w, i in bb.get_vocab().items())


def test_every_traced_template_has_several_subjects_with_different_answers() -> None:
    """Subject dependence by construction (issue 12): with one subject per template the rest of the prompt
    gives the answer away, and corrupting the subject leaves it in place."""
    facts = all_facts(ROOT / "resources/facts/offline_facts.json", DEFAULT_EXTRA)
    traced = facts[facts["set"] == "traced"]
    for template, grp in facts[facts["speech_set"] != "never_heard"].groupby("template"):
        if template not in set(traced["template"]):
            continue
        assert grp["subject"].nunique() >= 4, template
        assert grp["attribute"].nunique() >= 3, template
        for attr in grp.loc[grp["set"] == "traced", "attribute"]:
            assert (grp["attribute"] != attr).sum() >= 3, (template, attr)
    # one never-heard fact per template, never a traced one
    never = facts[facts["speech_set"] == "never_heard"]
    assert set(never["template"]) == set(traced["template"]) and never["template"].is_unique
    assert facts["known_id"].is_unique and not set(never["subject"]) & set(traced["subject"])
    assert set(never["set"]) == {"extra"}


def test_text_only_facts_are_a_seeded_deterministic_share() -> None:
    ids = list(range(0, 200, 3))
    a = text_only_ids(ids, 0.5, seed=1)
    assert len(a) == round(0.5 * len(ids)) and a <= set(ids)
    assert text_only_ids(list(reversed(ids)), 0.5, seed=1) == a  # independent of the facts' order
    assert text_only_ids(ids, 0.5, seed=2) != a  # another seed, another split
    assert text_only_ids(ids, 0.0, 1) == set() and text_only_ids(ids, 1.0, 1) == set(ids)
    assert text_only_ids(ids, 0.25, 1) <= a | text_only_ids(ids, 0.25, 1)
    # a fact's membership depends on the fact and the seed, not on which other facts exist
    assert text_only_ids(ids, 0.5, 1) & set(ids[:10]) <= text_only_ids(ids, 0.5, 1)
    with pytest.raises(ValueError, match="text_only_fraction"):
        text_only_ids(ids, 1.5, 1)
    facts = all_facts(ROOT / "resources/facts/offline_facts.json", DEFAULT_EXTRA, text_only_fraction=0.5, seed=1)
    traced = facts[facts["set"] == "traced"]
    assert set(traced["speech_set"]) == {"heard", "text_only"}
    assert (traced["speech_set"] == "text_only").sum() == round(0.5 * len(traced))
    assert set(facts.loc[facts["set"] == "extra", "speech_set"]) == {"heard", "never_heard"}


def _row(kid: int, n_words: int, subj: tuple[int, int], role: str = "train") -> dict:
    """A speech-corpus row: word j spoken over units [3j, 3j + 3)."""
    return {"known_id": kid, "role": role, "units": list(range(3 * n_words)), "subj_start": 3 * subj[0],
            "subj_end": 3 * subj[1], "subj_words": list(subj), "word_idx": list(range(n_words)),
            "word_start": [3 * j for j in range(n_words)], "word_end": [3 * j + 3 for j in range(n_words)]}


def test_training_sequences_keep_text_only_answers_out_of_speech() -> None:
    facts = pd.DataFrame({"known_id": [0, 1, 2], "speech_set": ["heard", "text_only", "never_heard"]})
    corpus = pd.DataFrame([_row(0, 4, (0, 2)), _row(1, 4, (1, 2)), _row(1, 4, (1, 2), role="held_out")])
    seqs = training_sequences(facts, corpus)
    kinds = seqs.groupby("known_id")["kind"].agg(set).to_dict()
    assert kinds == {0: {"text", "s2t", "interleaved", "prefix"}, 1: {"text", "prefix"}, 2: {"text"}}
    assert set(seqs.loc[seqs["corpus_row"] >= 0, "corpus_row"]) == {0, 1}  # held-out speech is not trained on
    assert not seqs.loc[seqs["kind"] == "prefix", "answer"].any()
    pre = seqs[(seqs["kind"] == "prefix") & (seqs["known_id"] == 1)]
    # every prefix speaks part of the subject (word 1) and stops before the last word
    assert ((pre["w0"] <= 1) & (pre["w1"] >= 2) & (pre["w1"] < 4)).all() and len(pre) == 2 * 2
    inter = seqs[seqs["kind"] == "interleaved"]
    assert len(inter) == 4 * 5 // 2 - 1  # every [w0, w1) but the whole prompt (that is s2t)
    check_separation(facts, seqs)
    bad = pd.concat([seqs, seqs[seqs["kind"] == "prefix"].head(1).assign(known_id=1, answer=True)])
    with pytest.raises(ValueError, match="separation"):
        check_separation(facts, bad)


def test_sequence_ids_switch_modality_at_words() -> None:
    tok = build_tokenizer(["a b c d", "x"], n_units=12)
    m = markers_from_tokenizer(tok)
    crow = pd.Series(_row(0, 4, (1, 2)))
    w = ["a", "b", "c", "d"]
    ans = tok(" x", add_special_tokens=False)["input_ids"]
    word = {c: tok.convert_tokens_to_ids(c) for c in "abcdx"}
    row = pd.Series({"kind": "interleaved", "w0": 1, "w1": 3, "answer": True})
    ids, first = sequence_ids(row, w, ans, crow, tok, m)
    assert ids == [m.bos, m.text, word["a"], m.speech, *[m.units[u] for u in range(3, 9)], m.text, word["d"],
                   word["x"], m.eos]
    assert ids[first] == m.text and first == 10
    ids, first = sequence_ids(pd.Series({"kind": "prefix", "w0": 0, "w1": 2, "answer": False}), w, ans, crow, tok, m)
    assert ids == [m.bos, m.speech, *[m.units[u] for u in range(6)], m.text, word["c"], word["d"]]
    ids, first = sequence_ids(pd.Series({"kind": "text", "w0": 0, "w1": 0, "answer": True}), w, ans, None, tok, m)
    assert ids == [m.bos, m.text, word["a"], word["b"], word["c"], word["d"], word["x"], m.eos] and first == 1


def test_transcripts_speak_the_subject_then_its_words_never_the_answer() -> None:
    facts = pd.DataFrame({"known_id": [0, 1, 2], "speech_set": ["heard", "text_only", "never_heard"]})
    corpus = pd.DataFrame([_row(0, 4, (0, 2)), _row(1, 4, (1, 2))])
    assert "transcript" not in set(training_sequences(facts, corpus)["kind"])  # off unless the mix asks for them
    seqs = training_sequences(facts, corpus, transcripts=True)
    tr = seqs[seqs["kind"] == "transcript"]
    assert set(tr["known_id"]) == {0, 1} and not tr["answer"].any()
    # every span [w0, w1) that overlaps the subject (text-only fact: word 1), the whole prompt included
    assert sorted(zip(tr.loc[tr["known_id"] == 1, "w0"], tr.loc[tr["known_id"] == 1, "w1"])) == [
        (0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4)]
    check_separation(facts, seqs)
    tok = build_tokenizer(["a b c d", "x"], n_units=12)
    m = markers_from_tokenizer(tok)
    word = {c: tok.convert_tokens_to_ids(c) for c in "abcd"}
    ans = tok(" x", add_special_tokens=False)["input_ids"]
    ids, first = sequence_ids(pd.Series({"kind": "transcript", "w0": 1, "w1": 3, "answer": False}),
                              ["a", "b", "c", "d"], ans, pd.Series(_row(1, 4, (1, 2))), tok, m)
    assert ids == [m.bos, m.speech, *[m.units[u] for u in range(3, 9)], m.text, word["b"], word["c"], m.eos]
    assert ids[first] == m.text and first == 8


def test_subject_word_span() -> None:
    assert subject_word_span("The capital of Italy is", "Italy") == (3, 4)
    assert subject_word_span("The Eiffel Tower is located in", "Eiffel Tower") == (1, 3)
    assert subject_word_span("7-Eleven was founded in", "7-Eleven") == (0, 1)


def test_subject_unit_range_is_the_token_maps() -> None:
    """The unit shared by the subject's last word and the next word belongs to the next word (the token map's
    rule), so the build's ablation and noise corrupt exactly the range the traces corrupt."""
    ranges = {0: (0, 5), 1: (4, 9), 2: (8, 12), 3: (12, 15)}
    assert subject_unit_range(ranges, (1, 3)) == (4, 12)
    assert subject_unit_range(ranges, (1, 2)) == (4, 8)
    assert subject_unit_range(ranges, (3, 4)) == (12, 15)
    assert subject_unit_range({0: (0, 3), 1: (3, 3)}, (0, 1)) == (0, 3)


def test_build_rejects_bad_rendering_roles(tmp_path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(FACTS))
    with pytest.raises(ValueError, match="held-out"):
        build_offline_speechlm(facts, None, tmp_path / "bb", tmp_path / "m", settings=TINY, ev_settings=TINY_EVAL,
                               data=SpeechData(1, renderings=(Rendering("en-us", 160, 50),),
                                               held_out=Rendering("en-us", 160, 50)))
    with pytest.raises(ValueError, match="main rendering"):
        build_offline_speechlm(facts, None, tmp_path / "bb", tmp_path / "m", settings=TINY, ev_settings=TINY_EVAL,
                               data=SpeechData(1, renderings=(Rendering("en-us", 160, 50),),
                                               main=Rendering("en", 120, 50)))


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """Both stages on 3 facts + 2 extra facts per template, a few steps, 8 fitted units."""
    d = tmp_path_factory.mktemp("offline")
    facts = d / "facts.json"
    facts.write_text(json.dumps(FACTS))
    bb_ev = build_backbone(facts, d / "backbone", DEFAULT_EXTRA, settings=TINY, arch=TINY_ARCH, max_extra=3,
                           ev_settings=TINY_EVAL,
                           eval_json=d / "backbone_eval.json")
    data = SpeechData(renderings=(Rendering("en-us", 160, 50),), held_out=Rendering("en", 178, 54),
                      unheard=None, extra_renderings=1, text_only_fraction=0.34)
    ev = build_offline_speechlm(facts, None, d / "backbone", d / "speechlm", data=data, settings=TINY, k=8,
                                ev_settings=TINY_EVAL, eval_json=d / "eval.json")
    return d, bb_ev, ev


def test_tiny_backbone_is_a_text_model_loaded_by_hf(tiny_build) -> None:
    d, bb_ev, _ = tiny_build
    for f in ("model.safetensors", "config.json", "tokenizer.json", "facts.parquet", "backbone.json", "eval.json"):
        assert (d / "backbone" / f).is_file(), f
    assert json.loads((d / "backbone_eval.json").read_text()) == bb_ev
    assert set(bb_ev["text"]) == {"traced", "extra"} and bb_ev["text"]["traced"]["n"] == 3
    assert bb_ev["text"]["extra"]["n"] == 3 * 2
    assert 0 < bb_ev["noise_t2t"]["scale"] and bb_ev["noise_t2t"]["n"] == 3
    assert bb_ev["noise_t2t"]["multiplier"] in (3.0, 7.0) and isinstance(bb_ev["noise_t2t"]["reached"], bool)
    loaded = load_model(ModelSpec("backbone", "hf", str(d / "backbone"), **CPU))
    assert "[Speech]" not in loaded.tokenizer.get_vocab()
    assert loaded.tokenizer("Mumbai is a city in")["input_ids"][0] == loaded.tokenizer.bos_token_id


def test_tiny_speechlm_extends_the_backbone_and_is_loaded_by_spiritlm(tiny_build) -> None:
    d, _, ev = tiny_build
    out = d / "speechlm"
    assert not (d / ".speechlm.building").exists()
    for f in ("model.safetensors", "config.json", "tokenizer.json", "units.npz", "speech_corpus.parquet",
              "train_sequences.parquet", "facts.parquet", "speechlm.json", "eval.json"):
        assert (out / f).is_file(), f
    assert json.loads((d / "eval.json").read_text()) == json.loads((out / "eval.json").read_text())
    bb = load_model(ModelSpec("b", "hf", str(d / "backbone"), **CPU))
    sp = load_model(ModelSpec("s", "spiritlm", str(out), **SPIRITLM_CPU))
    m = markers_from_tokenizer(sp.tokenizer)
    assert m.n_units == 8 and m.bos is not None
    # stage 2 starts from stage 1: same architecture, word vocabulary first, markers and units appended
    n_words = bb.model.config.vocab_size
    assert sp.model.config.num_hidden_layers == bb.model.config.num_hidden_layers
    assert sp.model.config.vocab_size == n_words + 2 + 8 and m.text == n_words
    # continued training moved the blocks away from the backbone's, but not to a fresh initialisation
    a, b = bb.model.model.layers[0].mlp.up_proj.weight, sp.model.model.layers[0].mlp.up_proj.weight
    assert not torch.equal(a, b) and float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), 0)) > 0.5
    corpus = io.read_table(out / "speech_corpus.parquet")
    facts = io.read_table(out / "facts.parquet")
    never = set(facts.loc[facts["speech_set"] == "never_heard", "known_id"])
    assert never and not never & set(corpus.loc[corpus["role"] == "train", "known_id"])  # never spoken in training
    assert set(corpus.loc[corpus["role"] == "never_heard", "known_id"]) == never
    assert (facts.loc[facts["set"] == "traced", "speech_set"] == "text_only").sum() == 1  # round(0.34 x 3)
    assert ((corpus["subj_start"] >= 0) & (corpus["subj_end"] > corpus["subj_start"])
            & (corpus["subj_end"] <= corpus["units"].map(len))).all()
    # eval.json: every measure the issue asks for
    assert ev["speech"]["en@178wpm-p54"]["role"] == "held_out" and ev["text"]["n"] == 3
    assert ev["speech_main"] is not None and ev["speech_held_out"] is not None
    assert 0 <= ev["ablation"]["random_units_accuracy"] <= 1 and ev["ablation"]["swap"]["n"] == 2  # heard facts
    assert ev["noise_t2t"]["n"] == 3 and ev["noise_s2t"]["n"] == 2
    # each modality under the multiplier the noise rule (factrace.core.noise_rule) chooses from its medians
    for key in ("noise_t2t", "noise_s2t"):
        noise = ev[key]
        medians = {e["multiplier"]: e["median_ratio"] for e in noise["medians_evaluated"]}
        assert list(medians) == [m for m in (3.0, 7.0) if m <= noise["multiplier"]]
        chosen = choose_multiplier(TINY_EVAL.noise, medians.__getitem__)
        assert (noise["multiplier"], noise["reached"]) == (chosen.multiplier, chosen.reached), key
        assert noise["median_ratio"] == medians[noise["multiplier"]] and noise["rule"]["target_ratio"] == 0.3
        assert noise["scale"] == pytest.approx(noise["multiplier"] * noise["std"], rel=1e-3)
    if ev["noise_s2t"]["multiplier"] != ev["noise_t2t"]["multiplier"]:  # S->T under T->T's multiplier too
        other = ev["noise_s2t_at_t2t_multiplier"]
        assert other["multiplier"] == ev["noise_t2t"]["multiplier"] and other["std"] == ev["noise_s2t"]["std"]
        assert ev["summary"]["ratio_s2t_at_t2t_multiplier"] == other["median_ratio"]
    else:
        assert "noise_s2t_at_t2t_multiplier" not in ev
    assert ev["n_text_only"] == 1 and ev["carry_over"]["n_facts"] == 1
    assert ev["never_heard"]["n_facts"] == 2 and ev["carry_over"]["speech"]["n"] <= 1
    assert 0 <= ev["summary"]["carry_over_template_prior"] <= 1
    assert set(ev["summary"]) >= {"random_units", "swap_followed", "ratio_t2t", "ratio_s2t", "carry_over_speech"}


def test_separation_holds_in_the_saved_training_corpus(tiny_build) -> None:
    """From the files the build saved: every trained sequence with speech, rebuilt token by token, holds no
    text-only fact's answer, and never-heard facts are never spoken."""
    d, _, _ = tiny_build
    out = d / "speechlm"
    facts = io.read_table(out / "facts.parquet").set_index("known_id")
    corpus = io.read_table(out / "speech_corpus.parquet")
    seqs = io.read_table(out / "train_sequences.parquet")
    sp = load_model(ModelSpec("s", "spiritlm", str(out), **SPIRITLM_CPU))
    tok, m = sp.tokenizer, markers_from_tokenizer(sp.tokenizer)
    speech = seqs[seqs["corpus_row"] >= 0]
    assert len(speech) and set(facts.loc[speech["known_id"], "speech_set"]) == {"heard", "text_only"}
    text_only = speech[facts.loc[speech["known_id"], "speech_set"].to_numpy() == "text_only"]
    assert len(text_only) and set(text_only["kind"]) == {"prefix"}
    checked = 0
    for r in text_only.itertuples():
        crow = corpus.iloc[int(r.corpus_row)]
        f = facts.loc[int(r.known_id)]
        assert int(crow.known_id) == int(r.known_id) and crow.role == "train"
        answer = tok(" " + f["attribute"], add_special_tokens=False)["input_ids"]
        ids, first = sequence_ids(r, f["prompt"].split(), answer, crow, tok, m)
        text = [i for i in ids[first:] if i not in m.non_text()]
        assert not any(text[j:j + len(answer)] == answer for j in range(len(text))), (r, text)
        checked += 1
    assert checked == len(text_only)


def test_speechlm_refuses_a_backbone_of_other_facts(tiny_build, tmp_path) -> None:
    d, _, _ = tiny_build
    other = tmp_path / "facts.json"
    other.write_text(json.dumps(FACTS[:2]))
    with pytest.raises(ValueError, match="other facts"):
        build_offline_speechlm(other, None, d / "backbone", tmp_path / "m", data=SpeechData(1), settings=TINY,
                               ev_settings=TINY_EVAL)
