"""The live event bus: PostgreSQL LISTEN/NOTIFY in, bounded per-consumer queues out."""
