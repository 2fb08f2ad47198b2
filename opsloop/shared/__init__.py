"""What the app and the agents both need, and nothing else: the JSON policy (`jsonutil`, `errors`),
the internal key check (`keys`), the log writer and its sink contract (`logwriter`), the hot
route declaration and middleware (`hot_routes`, `http`), the servers' uvicorn setup
(`http_server`, `log_throttle`), gc tuning, and the config report.

Why here and not under `agents/`: the app re-imports these (one home per behaviour), and the app
must not depend on the agents' package. This package imports nothing of `opsloop.backend`.
"""
