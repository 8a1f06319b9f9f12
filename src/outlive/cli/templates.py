"""Text written by ``outlive init``."""

from __future__ import annotations

CONFIG_TEMPLATE = """\
# outlive.toml — where runs go. The `local` target always exists (this directory, durable
# checkpoints in .outlive/durable/); add a [targets.NAME] table per box you rent.

[project]
name = "{name}"
exclude = ["data/", "*.pt"]          # not pushed to boxes, on top of .gitignore

# [targets.local]
# durable = ".outlive/durable"       # where checkpoints of local runs go
# env = {{ HF_HOME = "/data/hf" }}

# [targets.a100]
# profile = "runpod"                 # platform defaults: paths, grace, danger clocks, teardown
# host = "runpod-a100"               # an alias from ~/.ssh/config (ProxyJump, ports, keys honoured)
# workdir = "/workspace/{name}"
# durable = "/workspace/durable"     # must survive the platform's teardown verb
# spot = true

# [targets.box]
# profile = "generic-ssh"
# host = "10.0.0.5"
# port = 2222
# user = "root"
# identity_file = "~/.ssh/id_ed25519"
# workdir = "/root/{name}"
"""
