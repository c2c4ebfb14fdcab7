"""Analysis of causal traces: AIE with bootstrap CIs, modality tests, figures.

Pure functions over pandas DataFrames, in modules imported by name (``factrace.analysis.aie``, ``.stats``, ...):
the package itself imports nothing, so that every ``factrace`` command starts without pandas or scipy. ``aie``
and ``stats`` import no plotting library; ``figures`` and ``heatmaps`` (through ``plotting``, what every figure
shares) set the matplotlib Agg backend on import.
"""
