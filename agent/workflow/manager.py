"""The station's live enrollment sessions: start (if the journal has room), find, expire."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from agent.config import Config
from agent.heap import trim_heap
from agent.workflow.session import Session, WorkflowError

log = logging.getLogger(__name__)


class Headroom(Protocol):
    """The journal's answer to "does one more maximum-size packet fit?"."""

    ok: bool
    message_id: str
    message_en: str


class SessionManager:
    """Keeps sessions in memory; an idle one expires and leaves nothing behind."""

    def __init__(self, config: Config, *, headroom: Callable[[], Headroom] | None = None,
                 clock: Callable[[], float] = time.monotonic, max_sessions: int = 16) -> None:
        self.config = config
        self.headroom = headroom
        self.clock = clock
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.on_finished: list[Callable[[Session], None]] = []
        # Checks run before a session starts; each raises WorkflowError to refuse (e.g. power low).
        self.gates: list[Callable[[], None]] = []

    def start(self, *, operator_id: str | None = None, ticket_at: str | None = None) -> Session:
        """Open a new session, refusing it up front when the journal could not hold its packet."""
        for gate in self.gates:
            gate()
        if self.headroom is not None:
            room = self.headroom()
            if not room.ok:
                raise WorkflowError("journal_full", 507, room.message_id, room.message_en)
        self.reap()
        with self._lock:
            live = [s for s in self._sessions.values() if s.packet_id is None]
            if len(live) >= self.max_sessions:
                raise WorkflowError("too_many_sessions", 429, "Terlalu banyak sesi terbuka.",
                                    "Too many open sessions; finish or cancel one.")
            session = Session(self.config, operator_id=operator_id, ticket_at=ticket_at, clock=self.clock)
            self._sessions[session.id] = session
        log.info("session %s started (operator %s)", session.id, operator_id or "-")
        return session

    def get(self, session_id: str) -> Session:
        """The session with this id, or a 404 error."""
        self.reap()
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise WorkflowError("no_session", 404, "Sesi tidak ditemukan atau sudah kedaluwarsa.",
                                "No such session (it may have expired).")
        return session

    def finish(self, session: Session) -> None:
        """Forget a sealed or cancelled session after telling the listeners (KPIs, audit)."""
        for listener in self.on_finished:
            try:
                listener(session)
            except Exception:
                log.exception("session listener failed for %s", session.id)
        with self._lock:
            self._sessions.pop(session.id, None)
        trim_heap()

    def reap(self) -> int:
        """Expire sessions idle past the configured time; return how many."""
        limit = self.config.session.idle_timeout_seconds
        now = self.clock()
        with self._lock:
            idle = [s for s in self._sessions.values() if now - s.last_activity > limit]
        expired = 0
        for session in idle:
            if not session.lock.acquire(blocking=False):
                continue  # a request is working on it right now: not idle
            try:
                session.expire()
                expired += 1
                log.info("session %s expired after %d s idle", session.id, limit)
            except WorkflowError:
                pass
            finally:
                session.lock.release()
            self.finish(session)
        return expired

    def snapshot(self) -> list[dict[str, Any]]:
        """Open sessions for diagnostics (ids and states only)."""
        with self._lock:
            return [{"session_id": s.id, "state": s.state.value} for s in self._sessions.values()]
