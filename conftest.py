"""Root conftest: load the suite's pytest plugin (``fixtures``) for every run."""

pytest_plugins = ["fixtures.plugin"]
