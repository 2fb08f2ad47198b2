"""Test infrastructure: a real PostgreSQL per test session and real processes per test module."""
