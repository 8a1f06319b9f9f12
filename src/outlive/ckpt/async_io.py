"""The background half of a two-phase save (CheckFreq): at most one persist in flight.

Each persist runs in its own non-daemon thread, so the interpreter waits for it on any normal
exit (return, ``sys.exit``, an uncaught exception) and a ``save()`` followed by process exit
still leaves the checkpoint durable. A persist that fails stores its error, which the next call
raises; an error nobody asked for by exit time is logged, never swallowed silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Callable

from outlive.errors import CheckpointError

__all__ = ["Persister"]

_log = logging.getLogger("outlive.ckpt")

_live: weakref.WeakSet[Persister] = weakref.WeakSet()
_live_lock = threading.Lock()


class Persister:
    """Runs persist jobs one at a time in the background and hands their errors back."""

    def __init__(self, name: str = "outlive-persist") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._label = ""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        with _live_lock:
            _live.add(self)

    @property
    def busy(self) -> bool:
        """True while a persist is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the running persist; raise its error if it failed. False on timeout."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                return False
        self.check()
        return True

    def check(self) -> None:
        """Raise the error of a finished persist (once), without waiting for a running one."""
        with self._lock:
            error, label = self._error, self._label
            self._error = None
        if error is None:
            return
        if isinstance(error, CheckpointError):
            raise error
        raise CheckpointError(
            f"{label} failed in the background ({type(error).__name__}: {error}); the previous "
            "checkpoint is intact."
        ) from error

    def submit(self, job: Callable[[], None], label: str) -> None:
        """Start ``job`` in the background once the previous one is done (its error raised)."""
        self.wait()
        thread = threading.Thread(target=self._run, args=(job, label), name=self._name)
        thread.daemon = False  # the interpreter joins it at exit: a save is never cut short
        self._thread = thread
        thread.start()

    def _run(self, job: Callable[[], None], label: str) -> None:
        try:
            job()
        except BaseException as exc:  # stored for the caller; a thread has no one to raise to
            with self._lock:
                self._error, self._label = exc, label

    def report_unraised(self) -> None:
        """At exit: log an error no later call picked up (a forked child has nothing to say)."""
        if os.getpid() != self._pid:
            return
        with self._lock:
            error, label = self._error, self._label
            self._error = None
        if error is not None:
            _log.error("%s failed and was never reported: %s", label, error)


@atexit.register
def _report_at_exit() -> None:
    # Non-daemon persist threads have been joined before atexit handlers run.
    with _live_lock:
        persisters = list(_live)
    for persister in persisters:
        persister.report_unraised()
