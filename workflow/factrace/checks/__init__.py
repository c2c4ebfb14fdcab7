"""Commands over finished results: the facts file's skipped rows and the integrity of written tables
(``integrity``: ``check-facts``, ``check-tables``), merging shard tables and printing a table's provenance
(``tables``: ``merge``, ``provenance``), the cluster env files resolved with pip's resolver (``envs``), and two
runs that differ in a model's dtype compared on Figure 2's cells (``precision``: ``dtype-compare``)."""
