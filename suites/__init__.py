"""The acceptance suites: one package per area (database, messaging, autoscaling, storage, platform).

PYTEST_DONT_REWRITE: the pytest11 entry point makes pytest mark every top-level package of this
distribution for assertion rewriting; one imported before (a self-test, the command) would warn
"Module already imported", an error under filterwarnings=error. Checks are rewritten as test modules.
"""
