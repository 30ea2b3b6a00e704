"""Logging set-up: journald-friendly under systemd, a TRACE level for raw wire bytes.

Redaction rule (see docs/architecture.md): no biometric data, templates, NIK, names or keys
are ever passed to a log call. Wire bytes are logged only at TRACE, and drivers elide image
and template payloads even there.
"""

from __future__ import annotations

import logging
import os
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# syslog priorities (RFC 5424) that journald reads from a "<N>" prefix on each line.
_SYSLOG_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
    TRACE: 7,
}


class JournaldFormatter(logging.Formatter):
    """No timestamp (journald adds one) and a ``<N>`` priority prefix so levels survive."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record with its syslog priority prefix."""
        priority = _SYSLOG_PRIORITY.get(record.levelno, 6)
        if record.levelno >= logging.CRITICAL:
            priority = 2
        text = super().format(record)
        # Each physical line gets the prefix, so a traceback keeps its level in journald.
        return "\n".join(f"<{priority}>{line}" for line in text.splitlines())


def under_journald() -> bool:
    """True when stderr is connected to the systemd journal."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def setup_logging(level: str = "INFO", *, journald: bool | None = None) -> None:
    """Configure the root logger once for the whole process."""
    if journald is None:
        journald = under_journald()
    handler = logging.StreamHandler(sys.stderr)
    if journald:
        handler.setFormatter(JournaldFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(TRACE if level == "TRACE" else getattr(logging, level, logging.INFO))
