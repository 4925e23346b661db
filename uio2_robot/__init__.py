"""uio2-robot: Unified-IO 2 as a robot policy."""

__version__ = "0.1.0"
