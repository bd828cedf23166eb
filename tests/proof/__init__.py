"""Proof that leaks leak: tests against a real, throwaway PostgreSQL server."""
