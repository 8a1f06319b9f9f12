"""``python3 [-S] <bundle>/box VERB``: the agent run as a directory (the Slurm batch step, tmux).

Run this way ``sys.path[0]`` is this directory; the package's parent goes there instead, so
``box`` imports as a package. In a bundle the job library (``outlive/``) sits next to ``box/``;
in outlive's own source tree (tests) the ``src`` directory above ``outlive/agent/box`` is added.
"""

import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_parent = os.path.dirname(_here)
sys.path[0] = _parent
if not os.path.isfile(os.path.join(_parent, "outlive", "wire.py")):
    sys.path.insert(1, os.path.dirname(os.path.dirname(_parent)))  # .../src of a source tree

from box.main import main  # type: ignore[import-not-found]  # noqa: E402

sys.exit(main(sys.argv))
