"""slotguard: find database connection leaks in Python code before production does."""

__version__ = "0.1.0"
