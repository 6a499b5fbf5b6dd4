"""The acceptance suites: one package per area (database, messaging, autoscaling, storage, platform)."""
