"""The adaptation of an old environment's documents to the new infrastructure (see values.py)."""
