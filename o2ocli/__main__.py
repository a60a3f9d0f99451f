"""``python -m o2ocli``."""

from o2ocli.cli.main import main

if __name__ == "__main__":  # not when a worker process (spawn) imports it
    main()
