"""Causal tracing (activation patching) after Meng et al. (2022)."""
