"""HTML pages for `snakemake --report`: the result tables and the per-prompt trace plots, shown inline."""
