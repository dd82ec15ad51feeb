"""Verification: the C runner, verifier-log parsing, verdicts, baselines and reports."""
