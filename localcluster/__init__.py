"""The embedded default: a real single-node Kubernetes built and started by this project.

Public surface: :class:`localcluster.cluster.EmbeddedCluster` (``up``/``down``/``status``),
the image builder in :mod:`localcluster.images`, and the ``geocube-acceptance cluster`` CLI.

PYTEST_DONT_REWRITE: the pytest11 entry point makes pytest mark every top-level package of this
distribution for assertion rewriting; one imported before (a self-test, the command) would warn
"Module already imported", an error under filterwarnings=error. Checks are rewritten as test modules.
"""
