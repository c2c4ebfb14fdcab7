"""factrace: causal tracing of factual recall in speech-text language models."""

__version__ = "0.2.0"
