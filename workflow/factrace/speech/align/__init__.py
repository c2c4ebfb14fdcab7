"""Word alignment of the prompt audio: offline aligners (:mod:`.aligners`), HuBERT CTC forced alignment
(:mod:`.ctc`, :mod:`.emissions`, text normalised by :mod:`.normalise`), the ``align`` stage (:mod:`.stage`) and the
comparison of methods (:mod:`.quality`); commands ``align`` and ``align-compare`` in :mod:`.commands`."""
