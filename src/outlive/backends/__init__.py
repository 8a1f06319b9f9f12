"""Detach primitives other than the agent's own setsid/tmux supervisor: each backend renders what
its scheduler needs (a batch script, a manifest); the agent submits it and judges the
scheduler's view of a run next to the run's own records.

``slurm``        the batch script (a pure function of a :class:`~outlive.backends.slurm.BatchSpec`)
``slurm_launch`` the client side of ``outlive run`` on a Slurm target
"""
