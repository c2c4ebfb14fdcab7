"""The offline speech LM build on a tiny corpus (3 facts, eSpeak renderings, a few training steps)."""

from __future__ import annotations

import json

import pytest
from factrace import io
from factrace.models.load import ModelSpec, load_model
from factrace.speechlm.offline import (
    Rendering,
    TrainSettings,
    build_offline_speechlm,
    build_tokenizer,
    parse_renderings,
)
from factrace.speechlm.prompts import markers_from_tokenizer

FACTS = [
    {"known_id": 0, "subject": "São Paulo", "attribute": "Brazil", "template": "{} is a city in",
     "prediction": "Brazil", "prompt": "São Paulo is a city in", "relation_id": "P17"},
    {"known_id": 1, "subject": "Mumbai", "attribute": "India", "template": "{} is a city in",
     "prediction": "India", "prompt": "Mumbai is a city in", "relation_id": "P17"},
    {"known_id": 5, "subject": "Volkswagen", "attribute": "Germany", "template": "{} is a car manufacturer based in",
     "prediction": "Germany", "prompt": "Volkswagen is a car manufacturer based in", "relation_id": "P17"},
]


def test_rendering_parsing() -> None:
    assert Rendering.parse("en-us:160:50") == Rendering("en-us", 160, 50)
    assert Rendering.parse({"voice": "en", "rate": 150}) == Rendering("en", 150, 50)
    assert parse_renderings("en-us:160,en:150:40") == [Rendering("en-us", 160), Rendering("en", 150, 40)]
    assert parse_renderings('[["en", 150, 40]]') == [Rendering("en", 150, 40)]


def test_tokenizer_word_level_with_offsets_and_markers() -> None:
    tok = build_tokenizer(["São Paulo is a city in", "Brazil"], n_units=5)
    enc = tok("São Paulo is a city in", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<s>", "sao", "paulo", "is", "a", "city", "in"]
    assert enc["offset_mapping"][1] == (0, 3)
    m = markers_from_tokenizer(tok)
    assert m.bos == tok.bos_token_id and m.n_units == 5 and m.units == tuple(range(m.speech + 1, m.speech + 6))
    assert tok("[Speech][Hu2][Hu0][Text]")["input_ids"] == [m.bos, m.speech, m.units[2], m.units[0], m.text]


def test_build_rejects_bad_rendering_roles(tmp_path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(FACTS))
    with pytest.raises(ValueError, match="held-out"):
        build_offline_speechlm(facts, None, tmp_path / "m", renderings=["en-us:160:50"], held_out="en-us:160:50")
    with pytest.raises(ValueError, match="main rendering"):
        build_offline_speechlm(facts, None, tmp_path / "m", renderings=["en-us:160:50"], held_out="en:178:54",
                               main="en:120:50")


def test_tiny_build_is_loadable_and_evaluated(tmp_path) -> None:
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps(FACTS))
    out = tmp_path / "speechlm"
    ev = build_offline_speechlm(
        facts, None, out, renderings=["en-us:160:50"], held_out="en:178:54", unheard=None, k=8,
        settings=TrainSettings(steps=15, batch=8, hidden=32, intermediate=64, layers=2, heads=2, warmup=5),
        eval_json=tmp_path / "eval.json", max_new_tokens=2,
    )
    assert not (tmp_path / ".speechlm.building").exists()
    for f in ("model.safetensors", "config.json", "tokenizer.json", "units.npz", "speech_corpus.parquet",
              "speechlm.json", "eval.json"):
        assert (out / f).is_file(), f
    assert json.loads((tmp_path / "eval.json").read_text()) == json.loads((out / "eval.json").read_text())
    assert ev["main_rendering"] == {"rendering": "en-us@160wpm-p50", "role": "train"}
    assert set(ev["speech"]) == {"en-us@160wpm-p50", "en@178wpm-p54"}
    assert ev["speech"]["en@178wpm-p54"]["role"] == "held_out" and ev["text"]["n"] == 3
    corpus = io.read_table(out / "speech_corpus.parquet")
    assert len(corpus) == 3 * 2 and corpus["units"].map(len).min() > 5
    loaded = load_model(ModelSpec("offline", "spiritlm", str(out), device="cpu"))
    m = markers_from_tokenizer(loaded.tokenizer)
    assert m.n_units == 8 and m.bos is not None
    assert loaded.model.config.num_hidden_layers == 2
