"""Refusals of the operator layer, as :class:`~agent.workflow.session.WorkflowError` subclasses.

They are WorkflowErrors so the station API answers them with their HTTP status and both
messages, and the command line prints them as one line. Tree::

    WorkflowError
      OperatorError
        UnknownFingerError      403  the finger on the glass belongs to no active operator
        NotSignedInError        401  an enrollment call with nobody signed in
        LibraryFullError        507  the module's template library has no free slot
        DuplicateOperatorError  409  staff id or finger already enrolled
        ApprovalError           403  approval refused (own capture, not a supervisor, ...)
        ApprovalRequiredError   409  a session may not seal yet: items wait for a supervisor
        PinError                401  wrong/unknown PIN, PIN not allowed for the role, locked
        BadOperatorInput        422  a malformed staff id, name, role or PIN
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.workflow.session import WorkflowError


class OperatorError(WorkflowError):
    """Root of the operator layer's refusals."""

    code = "operator_error"
    status = 400

    def __init__(self, message_id: str, message_en: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(type(self).code, type(self).status, message_id, message_en, details)


class UnknownFingerError(OperatorError):
    """No active operator has this finger."""

    code = "unknown_finger"
    status = 403


class NotSignedInError(OperatorError):
    """Nobody is signed in."""

    code = "not_signed_in"
    status = 401


class LibraryFullError(OperatorError):
    """The fingerprint module's template library is full."""

    code = "library_full"
    status = 507


class DuplicateOperatorError(OperatorError):
    """The staff id, or the finger, is already enrolled."""

    code = "already_enrolled"
    status = 409


class ApprovalError(OperatorError):
    """A supervisor approval that the rules refuse."""

    code = "approval_refused"
    status = 403


class ApprovalRequiredError(OperatorError):
    """The session has force-accepted or excepted items that still need a supervisor."""

    code = "approval_required"
    status = 409


class PinError(OperatorError):
    """PIN sign-in refused."""

    code = "pin_refused"
    status = 401


class BadOperatorInput(OperatorError):
    """Malformed input (staff id, name, role, PIN, month)."""

    code = "bad_operator_input"
    status = 422
