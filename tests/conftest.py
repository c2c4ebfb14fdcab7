"""Shared fixtures: tiny random models of each supported family, built in memory (no downloads); one local run of
the tiny config per test session (tests/tiny_run.py: the drills damage and rebuild it, tests/test_workflow.py
reads it, tests/test_slurm.py compares a Slurm run of the same facts with it)."""

from __future__ import annotations

import pytest
import torch

FAMILIES = ("llama", "qwen2", "gpt2", "gpt_neox")


def tiny_model(family: str, vocab: int = 97, hidden: int = 32, layers: int = 4, seed: int = 0) -> torch.nn.Module:
    """A tiny random causal LM of ``family`` in float32 eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    common = {"vocab_size": vocab}
    if family == "llama":
        cfg = tf.LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **common)
        model = tf.LlamaForCausalLM(cfg)
    elif family == "qwen2":
        cfg = tf.Qwen2Config(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, **common)
        model = tf.Qwen2ForCausalLM(cfg)
    elif family == "gpt2":
        cfg = tf.GPT2Config(n_embd=hidden, n_layer=layers, n_head=4, n_positions=128, **common)
        model = tf.GPT2LMHeadModel(cfg)
    elif family == "gpt_neox":
        cfg = tf.GPTNeoXConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                               num_attention_heads=4, max_position_embeddings=128, **common)
        model = tf.GPTNeoXForCausalLM(cfg)
    else:
        raise ValueError(family)
    # random init makes near-uniform outputs; scale up the embeddings so that probabilities differ visibly
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20.0)
    return model.float().eval()


@pytest.fixture(params=FAMILIES)
def family_model(request) -> tuple[str, torch.nn.Module]:
    return request.param, tiny_model(request.param)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The session's one local run of the tiny config (tests/tiny_run.py): drills, workflow and Slurm tests."""
    from tiny_run import tiny_run as run

    return run(tmp_path_factory.mktemp("wf"))
