"""Loader ``spiritlm``: SpiritLM's language model (or the offline speech LM) as a transformers Llama.

SpiritLM's checkpoint layout (``checkpoints/spiritlm_model/spirit-lm-{base,expressive}-7b/``, see the spiritlm
repository's ``checkpoints/README.md``) is a transformers directory: ``config.json``, ``generation_config.json``,
``pytorch_model.bin``, ``special_tokens_map.json``, ``tokenizer_config.json`` and the SentencePiece
``tokenizer.model``. SpiritLM itself loads it with ``LlamaForCausalLM.from_pretrained(path)`` and
``LlamaTokenizer.from_pretrained(path, add_bos_token=True, add_eos_token=False)``; this loader does the same
through ``AutoTokenizer`` (a ``tokenizer.json`` is used when present; a bare ``tokenizer.model`` needs the
``sentencepiece`` package to be converted to a fast tokenizer, which the tracer needs for character offsets).

The offline speech LM (:mod:`factrace.models.offline_speechlm.build`) is saved in the same form (safetensors + a
word-level fast tokenizer with ``[Text]``, ``[Speech]``, ``[Hu0..]``) and goes through this loader too, so that
both get the same marker logic (:func:`factrace.speechlm.prompts.markers_from_tokenizer`).

Config keys besides ``path``/``dtype``/``device`` (``ModelSpec.extra``): ``attn_implementation`` (default
``sdpa``; the fast tracing engine needs ``sdpa`` or ``eager``); ``speech_input`` (``hubert``, the only one).

What the S->T prompts feed: HuBERT units only (``[BOS] [Speech] [Hu..].. [Text]``), for both variants, as the
paper did ("each utterance is encoded and discretized by HuBERT"). The expressive tokenizer also has pitch
``[Pi..]`` and style ``[St..]`` tokens (``Markers.extra``), which SpiritLM's expressive speech tokenizer
interleaves with the HuBERT units by time; they are not fed, so both variants read the same speech tokens and
the token map stays one 25 Hz stream. The expressive model saw them in training: its S->T input here is
HuBERT-only, outside that distribution, and its S->T traces are read as such.
"""

from __future__ import annotations

import logging

from factrace.models.spec import (
    LoadedModel,
    ModelSpec,
    check_path,
    resolve_device,
    resolve_dtype,
    weights_fingerprint,
)

log = logging.getLogger(__name__)


class SpiritLMLoadError(RuntimeError):
    pass


def load_spiritlm(spec: ModelSpec) -> LoadedModel:
    from transformers import AutoTokenizer, LlamaForCausalLM

    from factrace.speechlm.prompts import markers_from_tokenizer

    path = check_path(spec)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    has_json = (path / "tokenizer.json").is_file()
    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True, add_bos_token=True, add_eos_token=False)
    except (ImportError, ValueError, OSError) as err:
        hint = "" if has_json else (
            " The directory has no tokenizer.json; converting SentencePiece's tokenizer.model needs the "
            "`sentencepiece` package (pip install sentencepiece), once per environment."
        )
        raise SpiritLMLoadError(f"model {spec.name!r}: cannot load the tokenizer from {path}: {err}.{hint}") from err
    if not getattr(tok, "is_fast", False):
        raise SpiritLMLoadError(f"model {spec.name!r}: the tokenizer at {path} is not a fast tokenizer (offsets)")
    markers = markers_from_tokenizer(tok)
    speech_input = spec.extra.get("speech_input")  # models.<name>.speech_input (the schema fills it)
    if speech_input != "hubert":  # also when missing: the spec names what the model reads
        raise SpiritLMLoadError(f"model {spec.name!r}: speech_input {speech_input!r} is not supported (hubert)")
    if markers.extra:
        log.info("%s: the tokenizer has %d pitch/style tokens ([Pi..]/[St..]); S->T prompts feed HuBERT units "
                 "only (speech_input: hubert, as in the paper)", spec.name, len(markers.extra))
    attn = spec.extra.get("attn_implementation", "sdpa")
    model = LlamaForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True, attn_implementation=attn)
    n_vocab = model.get_input_embeddings().weight.shape[0]
    top = max([markers.text, markers.speech, *markers.units, *markers.extra])
    if top >= n_vocab:
        raise SpiritLMLoadError(
            f"model {spec.name!r}: tokenizer id {top} is outside the embedding matrix ({n_vocab} rows)"
        )
    model.to(device).eval()
    model.requires_grad_(False)
    log.info("loaded %s from %s: [Text]=%d [Speech]=%d [Hu0..%d]=%d.., BOS %s, %d layers", spec.name, path,
             markers.text, markers.speech, markers.n_units - 1, markers.units[0], markers.bos,
             model.config.num_hidden_layers)
    return LoadedModel(spec, model, tok, device, weights_fingerprint(path))
