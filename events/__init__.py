"""The shared language of piaoxi: event records, topic names, the Avro codec and registry.

Nothing here imports `streams`, `projections` or `api`.
"""
