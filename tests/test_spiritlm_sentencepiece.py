"""The SpiritLM loader on SpiritLM's own on-disk layout: a SentencePiece ``tokenizer.model`` (no tokenizer.json)
with SpiritLM's added tokens ([Text], [Speech], [Hu0]..; the expressive one also [Pi..], [St..]), trained here
in milliseconds, beside a tiny Llama saved as pytorch_model.bin."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sentencepiece as spm  # a dependency: SpiritLM ships tokenizer.model only
import yaml
from factrace.models.load import ModelSpec
from factrace.models.spiritlm import SpiritLMLoadError, load_spiritlm
from factrace.speechlm.prompts import speech_prompt_ids, spiritlm_prompt_string, text_prompt_ids

CPU = {"dtype": "float32", "device": "cpu"}  # a model spec's dtype and device (no defaults of their own)
SPIRITLM_CPU = {**CPU, "extra": {"speech_input": "hubert"}}

ROOT = Path(__file__).resolve().parents[1]
N_HU = 20
CORPUS = ["The capital of Italy is Rome", "Danielle Darrieux was born in Paris", "The Eiffel Tower is in Paris",
          "Toyota Camry is produced by Toyota", "The mother tongue of Danielle Darrieux is French"] * 20


def spiritlm_dir(root: Path, expressive: bool) -> Path:
    """SpiritLM's layout: config.json, generation_config.json, pytorch_model.bin, special_tokens_map.json,
    tokenizer_config.json and tokenizer.model, the speech tokens being pieces of the SentencePiece model."""
    import torch
    import transformers as tf

    out = root / ("spirit-lm-expressive-7b" if expressive else "spirit-lm-base-7b")
    out.mkdir(parents=True)
    added = ["[Text]", "[Speech]"] + [f"[Hu{i}]" for i in range(N_HU)]
    if expressive:
        added += [f"[Pi{i}]" for i in range(4)] + [f"[St{i}]" for i in range(3)]
    (root / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(root / "corpus.txt"), model_prefix=str(out / "tokenizer"), vocab_size=120, model_type="bpe",
        user_defined_symbols=added, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, byte_fallback=False,
        character_coverage=1.0, minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
        "eos_token": "</s>", "unk_token": "<unk>", "legacy": False, "model_max_length": 1000000}))
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                                                             "unk_token": "<unk>"}))
    n_vocab = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model")).get_piece_size()
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    model = tf.LlamaForCausalLM(cfg)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    torch.save(model.state_dict(), out / "pytorch_model.bin")  # SpiritLM ships .bin weights
    assert (out / "pytorch_model.bin").is_file() and not (out / "tokenizer.json").exists()
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["base", "expressive"])
def spirit(request, tmp_path_factory):
    path = spiritlm_dir(tmp_path_factory.mktemp("spiritlm"), request.param)
    sp = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
    spec = ModelSpec(name="sl", loader="spiritlm", path=str(path), dtype="float32", device="cpu",
                     extra={"variant": "expressive" if request.param else "base", "speech_input": "hubert"})
    return request.param, sp, load_spiritlm(spec)


def test_loader_reads_sentencepiece_and_spiritlms_added_tokens(spirit):
    expressive, sp, loaded = spirit
    tok = loaded.tokenizer
    assert tok.is_fast  # converted from tokenizer.model (offsets for the tracer)
    from factrace.speechlm.prompts import markers_from_tokenizer

    m = markers_from_tokenizer(tok)
    assert m.text == sp.piece_to_id("[Text]") and m.speech == sp.piece_to_id("[Speech]")
    assert m.units == tuple(sp.piece_to_id(f"[Hu{i}]") for i in range(N_HU)) and m.bos == sp.bos_id() == 1
    extra = {sp.piece_to_id(f"[Pi{i}]") for i in range(4)} | {sp.piece_to_id(f"[St{i}]") for i in range(3)}
    assert set(m.extra) == (extra if expressive else set())


def test_speech_prompt_ids_are_what_spiritlms_tokenizer_makes_of_its_prompt_string(spirit):
    _, sp, loaded = spirit
    from factrace.speechlm.prompts import markers_from_tokenizer

    m = markers_from_tokenizer(loaded.tokenizer)
    units = [3, 17, 0, 5]
    ours = speech_prompt_ids(units, m)
    # SpiritLM's own call (spiritlm/model/spiritlm_model.py): LlamaTokenizer on the prompt string. (Raw
    # SentencePiece would put its dummy-prefix piece "▁" before [Speech]; the Llama tokenizer does not.)
    from transformers import LlamaTokenizer

    slow = LlamaTokenizer.from_pretrained(loaded.spec.path, add_bos_token=True, add_eos_token=False)
    theirs = slow(spiritlm_prompt_string(units))["input_ids"]
    fast = loaded.tokenizer(spiritlm_prompt_string(units))["input_ids"]
    assert ours == theirs == fast
    assert ours[1:] == [sp.piece_to_id(p) for p in ("[Speech]", "[Hu3]", "[Hu17]", "[Hu0]", "[Hu5]", "[Text]")]
    assert not set(ours) & set(m.extra)  # S->T feeds HuBERT units only, for the expressive model too


def test_text_prompt_offsets_match_sentencepiece(spirit):
    _, sp, loaded = spirit
    from factrace.speechlm.prompts import markers_from_tokenizer

    m = markers_from_tokenizer(loaded.tokenizer)
    prompt = "The capital of Italy is"
    tp = text_prompt_ids(loaded.tokenizer, prompt, m)
    assert tp.ids[: tp.n_prefix] == [1, m.text]
    assert tp.ids[tp.n_prefix:] == sp.encode(prompt)
    spans = [prompt[a:b].strip() for a, b in tp.offsets[tp.n_prefix:]]
    assert "".join(spans) == prompt.replace(" ", "")


def test_only_hubert_speech_input_is_accepted(tmp_path):
    path = spiritlm_dir(tmp_path, expressive=True)
    spec = ModelSpec(name="sl", loader="spiritlm", path=str(path), dtype="float32", device="cpu",
                     extra={"variant": "expressive", "speech_input": "hubert+pitch+style"})
    with pytest.raises(SpiritLMLoadError, match="speech_input"):
        load_spiritlm(spec)


def test_paper_config_states_what_spiritlm_expressive_is_fed(caplog):
    cfg = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert cfg["models"]["spiritlm_expressive"]["speech_input"] == "hubert"
    text = (ROOT / "config" / "paper.yaml").read_text()
    assert "[Pi..]" in text and "[St..]" in text and "paper" in text
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["models"]["additionalProperties"]["properties"]["speech_input"]["enum"] == ["hubert"]


def test_expressive_load_says_what_it_is_fed(tmp_path, caplog):
    path = spiritlm_dir(tmp_path, expressive=True)
    with caplog.at_level(logging.INFO, logger="factrace.models.spiritlm"):
        load_spiritlm(ModelSpec(name="ex", loader="spiritlm", path=str(path), **SPIRITLM_CPU))
    assert "HuBERT units only" in caplog.text
