"""Filtering: keep the facts a model answers with the attribute (exact or close variant)."""

from factrace.filtering.generate import filter_facts, greedy_generate, target_token
from factrace.filtering.match import classify, first_clause, first_sentence, normalise

__all__ = ["classify", "filter_facts", "first_clause", "first_sentence", "greedy_generate", "normalise",
           "target_token"]
