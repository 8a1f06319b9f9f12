"""Sweeps: many named runs over several targets, resumable from the registry (issue 17).

- :mod:`~outlive.sweep.spec` reads a sweep file into items (command template x parameters);
- :mod:`~outlive.sweep.registry` keeps the sweep's rows in the project's registry;
- :mod:`~outlive.sweep.plan` says what each item is and where the next launches go (pure);
- :mod:`~outlive.sweep.runner` is the scheduler loop (``outlive sweep FILE``);
- :mod:`~outlive.sweep.report` shapes ``outlive sweep status``;
- :mod:`~outlive.sweep.move` moves a run to another target (``outlive move``).
"""
