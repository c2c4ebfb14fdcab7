"""Facts in the Known-1000 format: loading, validation and sharding."""
