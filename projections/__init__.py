"""The read side: Postgres read models, the search index, checkpoints and rebuilds."""
