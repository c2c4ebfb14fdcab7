"""The figures of the analysis: Figure 2 and the AIE heatmaps (``heatmaps``), per-prompt traces and the modality
gap (``traces``), the speech chain's figures and WER histogram (``speech``, with their commands in ``commands``),
and what every figure shares (``plotting``: saving, colour maps; ``labels``: decoded token labels)."""
