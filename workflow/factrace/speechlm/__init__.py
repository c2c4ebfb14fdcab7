"""The speech-text LM interface, which every speech LM (SpiritLM or the offline one) is read through: SpiritLM's
prompt layout (``prompts``), a fact's inputs in each modality (``inputs``: token ids, corrupted range, the text
token of every position), its speech data (``speech_data``) and which traced facts it heard in speech training
(``fact_sets``). Filtering, tracing and the modality gap import it; it imports none of them."""
