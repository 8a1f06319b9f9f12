"""outlive's box-side agent: a stdlib-only package (Python >= 3.8) run by the transport on the box.

Protocol: ``python3 -S -c BOOT BUNDLE VERB`` (or ``python3 box VERB``) reads one JSON request on
stdin and prints one JSON reply on stdout, ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": "<one sentence>"}``. Every name, path and command travels inside the JSON, never through
a shell (hostile names are data).

Verbs (``verbs.py``): ``launch``, ``probe``, ``cancel``, ``tail`` (``runs.py``) go through
the backend dispatch table (``backends.py``: setsid and tmux in ``process.py``, Slurm in
``slurm.py``), keyed by the run's ``run.json``. ``expand`` and ``verify_deploy``
(``deploy.py``), ``secret_put`` (``secrets.py``), ``audit`` and ``doctor`` (``audit.py`` over
``host_facts.py`` and ``gpu_facts.py``), ``manifest`` (``manifests.py``). ``supervise RUN_DIR``
is internal: the run's supervisor (``supervisor.py``). ``serve`` (``serve.py``) answers the
read-only verbs one JSON line per request line on an open channel.

Nothing heavy is imported here: each one-shot call is a Python start on the box, and a verb loads
only the modules it needs.
"""
