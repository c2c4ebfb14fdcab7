"""Filtering: keep the facts a model answers with the attribute (exact or close variant).

``generate`` (greedy generation, target token; imports torch) and ``match`` (the match rule); the package itself
imports nothing, so that every ``factrace`` command starts without torch.
"""
