"""The box side: the ``box`` package (stdlib-only, runs on the box) and the client that calls it."""
