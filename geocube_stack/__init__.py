"""The reference Geocube deployment: image recipes, Go builds, database/Pub/Sub init material and stubs.

Public surface (everything else is private to the package):

* :mod:`geocube_stack.gobuild` — :func:`~geocube_stack.gobuild.build_stack_binaries` (``go install`` of
  Geocube's server, consolidater and autoscaler at the pinned version, plus fake-gcs-server);
* :mod:`geocube_stack.images` — :func:`~geocube_stack.images.build_stack_images`,
  :func:`~geocube_stack.images.push_stack_images`;
* :mod:`geocube_stack.params` — :func:`~geocube_stack.params.render_params`, :data:`~geocube_stack.params.PARAMETERS`,
  :func:`~geocube_stack.params.template_dirs`;
* :mod:`geocube_stack.protos` — :func:`~geocube_stack.protos.ensure_stubs`.

Rendering, applying and waiting are the suites' framework's (``fixtures.render``, ``fixtures.stack``): one
deploy path for the suites, the self-tests and the benchmarks.

PYTEST_DONT_REWRITE: the pytest11 entry point makes pytest mark every top-level package of this
distribution for assertion rewriting; one imported before (a self-test, the command) would warn
"Module already imported", an error under filterwarnings=error. Checks are rewritten as test modules.
"""

from __future__ import annotations

from geocube_stack.errors import StackError
from geocube_stack.module import GEOCUBE_MODULE, GEOCUBE_VERSION

__all__ = ["GEOCUBE_MODULE", "GEOCUBE_VERSION", "StackError"]
