"""The modality gap of a speech LM: per layer, how far a fact's speech hidden states are from its text ones
(``measure``), and its command ``modality-gap`` (``commands``)."""
