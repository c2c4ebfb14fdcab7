"""Causal tracing (activation patching) after Meng et al. (2022).

``method`` is the method in one page (kinds, window rule, noise, restoration, score); ``patching`` runs it by
hooks (the reference) and ``engine`` runs it fast (with ``batching``; the family-specific steps are in
``factrace.models.families``); ``precision`` measures a bf16 trace against float32 and holds the tolerance;
``categories`` labels the positions; ``scale``, ``stage``, ``job`` and ``commands`` are the trace stage of the
workflow. The cost model and the benchmark are in ``factrace.planning``.
"""
