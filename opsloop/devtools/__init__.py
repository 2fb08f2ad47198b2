"""Tools for development and tests only; nothing in the product imports them (a leaf)."""
