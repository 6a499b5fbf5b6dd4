"""The embedded default: a real single-node Kubernetes built and started by this project.

Public surface: :class:`localcluster.cluster.EmbeddedCluster` (``up``/``down``/``status``),
the image builder in :mod:`localcluster.images`, and the ``geocube-acceptance cluster`` CLI.
"""
