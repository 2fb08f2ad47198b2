"""The task engine: persistence (`repository`), routing (`agents.registry`), execution (`dispatcher`)."""
