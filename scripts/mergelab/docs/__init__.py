"""Documentation generated from the code: the schema's reference and defaults, the method table."""
