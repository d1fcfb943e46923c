"""Ready networks built from the building blocks."""
