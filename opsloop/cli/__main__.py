"""`python -m opsloop.cli …` is the same as the `opsloop` console script."""

from opsloop.cli.main import main

if __name__ == "__main__":
    main()
