"""Structured logs: storage and search (`repository`), our own non-blocking writer (`writer`)."""
