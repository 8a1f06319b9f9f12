"""The box side: ``box.py`` (stdlib-only, runs on the box) and the client that calls it."""
