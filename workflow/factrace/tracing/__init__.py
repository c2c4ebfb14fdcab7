"""Causal tracing (activation patching) after Meng et al. (2022).

``method`` is the method in one page (kinds, window rule, noise, restoration, score); ``patching`` runs it by
hooks (the reference) and ``engine`` runs it fast (with ``batching``; the family-specific steps are in
``factrace.models.families``); ``cost`` and ``estimate`` count what they compute; ``categories`` labels the
positions; ``inputs``, ``scale``, ``stage`` and ``job`` are the trace stage of the workflow; ``bench`` times
both paths.
"""
