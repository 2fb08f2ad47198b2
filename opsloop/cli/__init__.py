"""The `opsloop` command line. `--help` works without any configuration: commands import what
they need only when they run, and validate configuration only when they need it."""
