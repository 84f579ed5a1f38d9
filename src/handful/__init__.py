"""handful: reasoning from a handful of examples."""

__version__ = "0.1.0"
