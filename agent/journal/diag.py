"""The journal's lines on the diagnostics screen (``rekam diag``), read-only.

Register with ``agent.diagnostics.check(journal_checks)``; nothing here shows packet
contents, NIK or names, only counts, sizes and ids.
"""

from __future__ import annotations

from agent.config import Config
from agent.diagnostics import FAIL, OK, WARN, Check
from agent.journal.errors import JournalError
from agent.journal.inspect import journal_status


def journal_checks(cfg: Config) -> list[Check]:
    """Backlog, headroom and quarantined packets, each with what to do."""
    try:
        status = journal_status(cfg.state_dir, cfg.journal)
    except JournalError as exc:
        if "no journal here" in str(exc):
            return [Check("journal", WARN, "no journal yet (the daemon has not run)")]
        return [Check("journal", FAIL, str(exc),
                      "Basis data penyimpanan tidak terbaca; hubungi teknisi (rekam journal check).",
                      "The journal database cannot be read; run `rekam journal check`.")]
    room = status["headroom"]
    detail = (f"{status['waiting_packets']} packets waiting (oldest {status['oldest_waiting'] or '-'}),"
              f" {status['used_bytes'] / 1024**2:,.1f} of {status['quota_bytes'] / 1024**2:,.0f} MB")
    checks: list[Check] = []
    if not room["ok"]:
        checks.append(Check("journal", FAIL, detail, room["message_id"], room["message_en"]))
    elif room["warning"]:
        checks.append(Check("journal", WARN, detail, room["message_id"], room["message_en"]))
    else:
        checks.append(Check("journal", OK, detail))
    quarantined = status["states"]["quarantined"]["packets"]
    if quarantined:
        checks.append(Check(
            "journal quarantine", WARN, f"{quarantined} packets quarantined",
            "Ada paket dikarantina (rusak atau ditolak kantor pusat); hubungi teknisi.",
            "Some packets are quarantined (damaged or rejected by head office); call a technician "
            "and see `rekam journal status`."))
    return checks
