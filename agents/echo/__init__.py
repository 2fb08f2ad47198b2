"""The echo agent: answers `echo` tasks with what it received (SPEC section 3)."""
