"""Diagnostics checks for operators: who can sign in, approvals possible, PIN file, today's indicators.

Importing this module registers :func:`operators_checks` with :mod:`agent.diagnostics`. It reads
the journal without recovery (safe beside a running daemon) and never opens the scanner, which
the daemon holds. Ids and counts only: no names.
"""

from __future__ import annotations

from agent.config import Config
from agent.diagnostics import FAIL, OK, WARN, Check, check


@check
def operators_checks(cfg: Config) -> list[Check]:
    """Enrolled operators and supervisors, the scanner entry, the PIN file, today's figures."""
    from agent.journal import Journal, JournalError
    from agent.operators.indicators import Indicators
    from agent.operators.pin import PinFile, PinFileError
    from agent.operators.registry import OperatorRegistry
    from agent.operators.routes import pin_path

    ocfg = cfg.operators
    out: list[Check] = []
    dev = cfg.devices.get(ocfg.scanner)
    if dev is None or dev.driver != "zfm":
        out.append(Check("operator scanner", FAIL if ocfg.require_sign_in else WARN,
                         f"[operators] scanner = {ocfg.scanner!r} is not a configured ZFM module",
                         "Pemindai sidik jari petugas belum diatur; hubungi teknisi.",
                         f"Add [devices.{ocfg.scanner}] with driver = \"zfm\", or set [operators] scanner."))
    else:
        out.append(Check("operator scanner", OK, f"{ocfg.scanner} ({dev.url})"))
    try:
        with Journal.open(cfg.state_dir, cfg.journal, recover=False) as journal:
            ops = OperatorRegistry(journal).operators()
            today = Indicators(journal, cfg).today()
    except JournalError as exc:
        return [*out, Check("operators", FAIL, f"journal: {exc}")]
    roles = {r: sum(1 for o in ops if o.role == r) for r in ("operator", "supervisor", "technician")}
    detail = ", ".join(f"{n} {r}" for r, n in roles.items())
    if not ops and ocfg.require_sign_in:
        out.append(Check("operators", FAIL, "nobody is enrolled, so nobody can record",
                         "Belum ada petugas terdaftar. Daftarkan dengan `rekam operators enroll`.",
                         "No operator is enrolled. Enrol one with `rekam operators enroll`."))
    else:
        out.append(Check("operators", OK, detail or "none (sign-in not required)"))
    needs_sup = ocfg.require_supervisor_for_force_accept or ocfg.require_supervisor_for_exceptions
    if needs_sup and roles["supervisor"] < 2:
        out.append(Check("supervisors", WARN, f"{roles['supervisor']} enrolled; approvals need a supervisor "
                         "other than the one who captured",
                         "Daftarkan minimal dua supervisor agar persetujuan selalu mungkin.",
                         "Enrol at least two supervisors so an approval is always possible."))
    try:
        pins = PinFile(pin_path(cfg))
        with_pin = [o.staff_id for o in ops if pins.has(o.staff_id)]
        out.append(Check("PIN fallback", OK, f"{len(with_pin)} operators have a PIN"))
    except PinFileError as exc:
        out.append(Check("PIN fallback", FAIL, str(exc), "Berkas PIN tidak aman; hubungi teknisi.",
                         "The PIN file is unusable or readable by others; fix its mode (0600)."))
    st = today["station"]
    share = st["first_time_pass_share"]
    within = st["within_standard_share"]
    out.append(Check("today's indicators", OK,
                     f"{st['recordings']} recorded, {st['prints']} printed, first-time pass "
                     f"{'-' if share is None else f'{share:.0%}'}, within standard "
                     f"{'-' if within is None else f'{within:.0%}'}, "
                     f"{today['operators_signed_in_today']} operators signed in"))
    return out
