"""The test suite: a regular package, since ppi-python installs a top-level `tests` of its own."""
