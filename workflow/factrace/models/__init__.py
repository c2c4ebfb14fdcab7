"""Model families, loaders and the offline checkpoint conversion."""
