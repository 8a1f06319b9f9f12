"""The local daemon: a resident process that answers ``outlive status`` from warm state.

A look from a fresh CLI process pays its interpreter start-up and imports, then a new SSH session
whose login shell may run ``conda init`` or ``pyenv init``, then the agent's own interpreter. The
daemon keeps the imports loaded and one ``box.py serve`` channel open per target over the
ControlMaster, so a look costs the thin client's start-up plus one request line per target.

It is an accelerator, never a dependency: any failure to reach it (none running, another version
of outlive, a different environment, an unsafe socket directory) makes the CLI do the look itself,
and the first such look starts one in the background. It reads only (probe, tail), exits after
``OUTLIVE_DAEMON_IDLE_S`` (default 600 s) without a request, and ``OUTLIVE_NO_DAEMON=1`` turns it
off. ``outlive daemon status`` / ``outlive daemon stop`` show and stop it.
"""
