"""The agent registry: which agent handles which task type, and when it was last seen."""
