"""The local Render (`opsloop render fake`): a fake of Render's API held to its OpenAPI document
(`app.py`, `resources.py`), deploys that really run (`runner.py`), the conformance checker
(`openapi_check.py`) and its command line (`cli.py`)."""
