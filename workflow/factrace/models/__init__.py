"""Models: the supported families (``families/``, one module each), the loaders (``load``, ``spiritlm``, sharing
``spec``), checkpoints and their fetching, and the offline checkpoint conversion."""
