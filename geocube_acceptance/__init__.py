"""The ``geocube-acceptance`` command, the locations of the shipped suites and manifests, the pytest11 entry point.

PYTEST_DONT_REWRITE: pytest marks a pytest11 plugin's package for assertion rewriting, and the command has
imported this package before it starts pytest: without the marker, "Module already imported so cannot be
rewritten" is a warning, an error under filterwarnings=error.
"""
