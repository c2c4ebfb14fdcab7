"""Load the language models declared in the config (name, loader, path, dtype, device).

Loaders:
* ``hf``: a transformers causal-LM directory (safetensors + tokenizer), e.g. the converted SmolLM2 or a
  Llama-2-7B checkpoint on a cluster.
* ``spiritlm``: SpiritLM's language model (a Llama-2 with ``[Text]``, ``[Speech]`` and ``[Hu0..499]`` tokens), see
  ``factrace.models.spiritlm``.
Nothing is downloaded: paths must exist (``local_files_only``).
"""

from __future__ import annotations

from factrace.models.spec import (  # noqa: F401  (re-exported: the loaders' shared names are imported from here)
    DTYPES,
    LoadedModel,
    ModelNotFoundError,
    ModelSpec,
    check_path,
    resolve_device,
    resolve_dtype,
    weights_fingerprint,
)


def load_hf(spec: ModelSpec) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = check_path(spec)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.dtype, device)
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    model.to(device).eval()
    model.requires_grad_(False)
    return LoadedModel(spec, model, tok, device, weights_fingerprint(path))


def load_model(spec: ModelSpec) -> LoadedModel:
    if spec.loader == "hf":
        return load_hf(spec)
    if spec.loader == "spiritlm":
        from factrace.models.spiritlm import load_spiritlm

        return load_spiritlm(spec)
    raise ValueError(f"model {spec.name!r}: unknown loader {spec.loader!r}; use 'hf' or 'spiritlm'")
