"""``python -m localcluster ...`` is ``geocube-acceptance cluster ...``."""

import sys

from localcluster.cli import main

sys.exit(main())
