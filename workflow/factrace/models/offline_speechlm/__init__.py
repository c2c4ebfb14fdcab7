"""How the offline speech LM is made (like the GGUF conversion, a model builder): its training corpus
(``corpus``), stage 1, the text backbone, and stage 2, its speech adaptation (``train``, ``build``), and the
build's evaluation in ``eval.json`` (``evaluate``). It uses the speech-text LM interface (:mod:`factrace.speechlm`);
nothing outside the model builders imports it."""
