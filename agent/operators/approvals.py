"""Supervisor approval of force-accepted captures and biometric exceptions (MOSIP's reviewer step).

Rules, in order:

* only items that were force-accepted or excepted need (and can take) an approval, and only
  when ``[operators] require_supervisor_for_force_accept`` / ``..._for_exceptions`` say so;
* the approver is identified by their own fingerprint at that moment (an explicit step), and
  must be an active operator with the ``supervisor`` role;
* a supervisor may not approve their own capture: anyone recorded in the session's trail as
  having captured, force-accepted or excepted that item (or, for an item with no recorded
  doer, the session's operator) is refused;
* a session with an item still waiting may not seal (:func:`require_approvals`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from agent.config import OperatorsConfig
from agent.operators.audit import AuditLog
from agent.operators.errors import ApprovalError, ApprovalRequiredError, BadOperatorInput
from agent.operators.registry import Operator

_TERMINAL = ("sealed", "cancelled", "expired")


class ItemLike(Protocol):
    """What is read and set on a session item."""

    key: str
    status: str
    operator_id: str | None
    approved_by: str | None


class SessionLike(Protocol):
    """What is read of a session (agent.workflow.session.Session)."""

    id: str
    operator_id: str | None
    audit: list[dict[str, Any]]

    @property
    def items(self) -> Mapping[str, Any]:
        """Items by key."""

    @property
    def state(self) -> Any:
        """The session state (an enum with .value)."""


def needs_approval(item: ItemLike, cfg: OperatorsConfig) -> bool:
    """True when config asks for a supervisor on this kind of item."""
    return ((item.status == "force_accepted" and cfg.require_supervisor_for_force_accept)
            or (item.status == "excepted" and cfg.require_supervisor_for_exceptions))


def pending(session: SessionLike, cfg: OperatorsConfig) -> list[str]:
    """Items that still wait for a supervisor."""
    return [k for k, it in session.items.items() if needs_approval(it, cfg) and not it.approved_by]


def require_approvals(session: SessionLike, cfg: OperatorsConfig) -> None:
    """Raise ApprovalRequiredError while any item waits (call before Session.seal)."""
    waiting = pending(session, cfg)
    if waiting:
        raise ApprovalRequiredError(
            f"Perlu persetujuan supervisor (sidik jari) untuk: {', '.join(waiting)}.",
            f"A supervisor's fingerprint approval is needed for: {', '.join(waiting)}.",
            {"items": waiting})


def doers(session: SessionLike, key: str) -> set[str]:
    """Staff ids that captured, force-accepted or excepted ``key`` in this session."""
    found = {str(e["operator"]) for e in session.audit
             if e.get("item") == key and e.get("operator") and e.get("action") != "approve"}
    item = session.items[key]
    if item.operator_id:
        found.add(item.operator_id)
    if not found and session.operator_id:
        found.add(session.operator_id)
    return found


def approve(session: SessionLike, key: str, supervisor: Operator, *, audit: AuditLog | None = None) -> None:
    """Record ``supervisor``'s approval of item ``key`` (the caller holds the session).

    Raises:
        BadOperatorInput: unknown item.
        ApprovalError: not a supervisor, their own capture, nothing to approve, session closed.
    """
    item = session.items.get(key) if isinstance(key, str) else None
    if item is None:
        raise BadOperatorInput(f"Item {key!r} tidak dikenal.", f"Unknown item {key!r}.")

    def refuse(outcome: str, msg_id: str, msg_en: str) -> ApprovalError:
        if audit is not None:
            audit.record("session.approve_refused", outcome, operator_id=supervisor.staff_id,
                         session_id=session.id, item=key)
        return ApprovalError(msg_id, msg_en, {"reason": outcome})

    state = getattr(session.state, "value", session.state)
    if state in _TERMINAL:
        raise refuse("session_closed", "Sesi sudah selesai.", "The session is already closed.")
    if item.status not in ("force_accepted", "excepted"):
        raise refuse("nothing_to_approve", "Item ini tidak memerlukan persetujuan.",
                     "This item was neither force-accepted nor excepted; nothing to approve.")
    if not supervisor.active or supervisor.role != "supervisor":
        raise refuse("not_supervisor", "Hanya supervisor yang boleh menyetujui.",
                     "Only a supervisor may approve.")
    if supervisor.staff_id in doers(session, key):
        raise refuse("own_capture", "Supervisor tidak boleh menyetujui hasil rekamnya sendiri.",
                     "A supervisor may not approve their own capture; ask another supervisor.")
    item.approved_by = supervisor.staff_id
    session.audit.append({"action": "approve", "item": key, "operator": supervisor.staff_id,
                          "at": datetime.now(UTC).isoformat(timespec="milliseconds"), "outcome": item.status})
    # The success goes into the session's own trail above; audit.record_session keeps it.
