"""Hardening: fuzzing every route, load with faults, security properties."""
