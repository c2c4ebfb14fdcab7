"""Speech tokens: the speech tokenizers and SpiritLM-style deduplication (:mod:`.tokenizer`), and the stages
``fit-units``, ``speech-tokens`` and ``token-map`` (:mod:`.stages`, commands in :mod:`.commands`)."""
