"""Commands over finished results: the facts file's skipped rows and the integrity of written tables
(``integrity``: ``check-facts``, ``check-tables``), merging shard tables and printing a table's provenance
(``tables``: ``merge``, ``provenance``), and the cluster env files resolved with pip's resolver (``envs``)."""
