"""``python -m o2ocli``."""

from o2ocli.cli.main import main

main()
