# Shortcuts for the scripts the README names.
.PHONY: install run test lint bench

install:
	bash scripts/bootstrap.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:
	.venv/bin/opsloop bench
