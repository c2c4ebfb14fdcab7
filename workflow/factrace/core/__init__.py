"""The foundation every stage stands on: the columns of every table (``contracts``), Parquet reads and atomic
writes (``io``), what each table records about how it was made (``provenance``) and the workflow's config with
the schema's defaults (``config``). Nothing here imports another part of the package."""
