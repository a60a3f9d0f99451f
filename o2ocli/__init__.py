"""o2ocli: a command-line full node and wallet for an O2O commerce blockchain."""

__version__ = "0.1.0"
