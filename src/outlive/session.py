"""A client session: one per command (or per daemon look), owning what the command talks to.

Like an HTTP client that owns its transports and connection pool, a :class:`Session` holds the
project's config, its run registry, one agent client and one backend per target, and the
optional pool of persistent agent channels (the daemon's, ``watch``'s and ``logs -f``'s). Nothing
in the lifecycle reaches for a module-global or builds a transport by itself.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from outlive.config import Config, Target, load_config
from outlive.errors import OutliveError
from outlive.store import Store

if TYPE_CHECKING:
    from outlive.agent.channel import ChannelPool
    from outlive.agent.client import AgentClient
    from outlive.backends.base import Backend
    from outlive.transport.ssh import SshTransport


class Session:
    """The config, the registry, and per-target agents and backends of one command."""

    def __init__(self, cfg: Config, *, pool: ChannelPool | None = None) -> None:
        self.cfg = cfg
        self.pool = pool
        self.store = Store(cfg.state_dir)
        self._agents: dict[str, AgentClient] = {}
        self._backends: dict[str, Backend] = {}
        self._own_pool = False

    @classmethod
    def open(cls, start: Path | None = None, *, pool: ChannelPool | None = None) -> Session:
        """The session for the project at ``start`` (the current directory by default)."""
        return cls(load_config(start), pool=pool)

    def pooled(self) -> Session:
        """Route this session's read-only agent calls (probe, tail) through persistent channels,
        opened on first use and closed with the session (``watch``, ``logs -f``)."""
        if self.pool is None:
            from outlive.agent.channel import ChannelPool

            self.pool, self._own_pool = ChannelPool(), True
            self._agents.clear()
            self._backends.clear()
        return self

    def target(self, name: str) -> Target:
        return self.cfg.target(name)

    def project_id(self, *, create: bool = False) -> str | None:
        """This project's id (``config.project_id``): made by the first launch, read by looks."""
        from outlive.config import project_id

        return project_id(self.cfg.state_dir, create=create)

    def agent(self, target: Target | str) -> AgentClient:
        """The agent on ``target``: here (no host) or over the user's OpenSSH."""
        t = self.target(target) if isinstance(target, str) else target
        agent = self._agents.get(t.name)
        if agent is None:
            from outlive.agent.client import AgentClient

            if t.connection.host is None:
                agent = AgentClient.local(
                    self.cfg.state_dir, pool=self.pool, name=t.name, literal_paths=t.is_local
                )
            else:
                from outlive.transport.ssh import SshTransport

                transport = SshTransport(t)
                self._remember(transport)
                agent = AgentClient.remote(transport, python=t.connection.python, pool=self.pool)
            self._agents[t.name] = agent
        return agent

    def _remember(self, transport: SshTransport) -> None:
        """Record how this target's ssh master comes up, for the next command to start it
        before its imports (``transport.ahead``); a target ssh cannot reach yet is skipped."""
        from outlive.errors import TransportError
        from outlive.transport import ahead

        try:
            argv = transport.master_argv()
        except TransportError:
            return  # e.g. an unsafe control directory: the command itself says so
        source = str(self.cfg.source) if self.cfg.source is not None else None
        ahead.remember(
            str(self.cfg.state_dir),
            source,
            transport.name,
            argv,
            lambda: transport.master_socket(ahead.SOCKET_LOOKUP_TIMEOUT_S),
            transport.config_files(),
        )

    def backend(self, target: Target | str) -> Backend:
        """The platform backend of ``target`` (its profile's kind picks it)."""
        t = self.target(target) if isinstance(target, str) else target
        backend = self._backends.get(t.name)
        if backend is None:
            from outlive.backends import backend_for
            from outlive.backends.base import ProjectRef

            project = ProjectRef(self.cfg.project_name, self.cfg.project_dir, self.cfg.state_dir)
            backend = backend_for(t, self.agent(t), self.store.all, project)
            self._backends[t.name] = backend
        return backend

    def release(self) -> list[str]:
        """Free what the backends made only for this command (a Kubernetes reader pod); the
        sentences say what was freed. A failure to free is said too, never raised."""
        said: list[str] = []
        for name, backend in self._backends.items():
            try:
                said += backend.release()
            except (OutliveError, OSError) as exc:
                said.append(f"{name}: could not free what this command made there: {exc}")
        return said

    def close(self) -> None:
        self.release()  # a command that ended early
        if self._own_pool and self.pool is not None:
            self.pool.close()
            self.pool, self._own_pool = None, False

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
