"""NIK (Nomor Induk Kependudukan) validation, and its cross-check against biodata.

A NIK is 16 ASCII digits ``PPRRSSDDMMYYXXXX``: province, regency, district (kecamatan) of first
registration; day of birth (+40 for women), month, two-digit year; a serial 0001-9999.
Rules from ``shared/research/reliability_security.md`` section 4.2. A NIK never goes to a log;
:func:`mask` is the only form shown outside the packet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# Kemendagri province codes, including the Papua provinces created in 2022 (91-96 also cover the
# older coding, in which Papua was 94 and Papua Barat 91).
PROVINCES: dict[str, str] = {
    "11": "Aceh", "12": "Sumatera Utara", "13": "Sumatera Barat", "14": "Riau", "15": "Jambi",
    "16": "Sumatera Selatan", "17": "Bengkulu", "18": "Lampung", "19": "Kepulauan Bangka Belitung",
    "21": "Kepulauan Riau", "31": "DKI Jakarta", "32": "Jawa Barat", "33": "Jawa Tengah",
    "34": "DI Yogyakarta", "35": "Jawa Timur", "36": "Banten", "51": "Bali",
    "52": "Nusa Tenggara Barat", "53": "Nusa Tenggara Timur", "61": "Kalimantan Barat",
    "62": "Kalimantan Tengah", "63": "Kalimantan Selatan", "64": "Kalimantan Timur",
    "65": "Kalimantan Utara", "71": "Sulawesi Utara", "72": "Sulawesi Tengah",
    "73": "Sulawesi Selatan", "74": "Sulawesi Tenggara", "75": "Gorontalo", "76": "Sulawesi Barat",
    "81": "Maluku", "82": "Maluku Utara", "91": "Papua", "92": "Papua Barat", "93": "Papua Selatan",
    "94": "Papua Tengah", "95": "Papua Pegunungan", "96": "Papua Barat Daya",
}

_ASCII16 = re.compile(r"[0-9]{16}", re.ASCII)


@dataclass(frozen=True)
class NikProblem:
    """Why a NIK or biodata is refused, in both languages; ``field`` names the form field."""

    code: str
    field: str
    message_id: str
    message_en: str


@dataclass(frozen=True)
class NikInfo:
    """What a valid NIK says."""

    province: str
    regency: str
    district: str
    birth_date: date
    sex: str  # "M" or "F"
    serial: str


class NikError(ValueError):
    """A NIK that is not valid; carries one :class:`NikProblem`."""

    def __init__(self, problem: NikProblem) -> None:
        super().__init__(problem.message_en)
        self.problem = problem


def _fail(code: str, msg_id: str, msg_en: str, field: str = "nik") -> NikError:
    return NikError(NikProblem(code, field, msg_id, msg_en))


def parse_nik(nik: str, *, today: date) -> NikInfo:
    """Validate ``nik`` structurally and return what it encodes; raise :class:`NikError`."""
    if not isinstance(nik, str) or not _ASCII16.fullmatch(nik):
        # Full-width or Arabic-Indic digits pass str.isdigit(); only ASCII is a NIK.
        raise _fail("nik_format", "NIK harus 16 digit angka.", "The NIK must be exactly 16 digits (0-9).")
    pp, rr, ss = nik[0:2], nik[2:4], nik[4:6]
    dd, mm, yy, serial = int(nik[6:8]), int(nik[8:10]), int(nik[10:12]), nik[12:16]
    if pp not in PROVINCES:
        raise _fail("nik_province", f"Kode provinsi {pp} pada NIK tidak dikenal.",
                    f"Province code {pp} in the NIK is unknown.")
    if rr == "00" or ss == "00":
        raise _fail("nik_region", "Kode kabupaten/kecamatan pada NIK tidak boleh 00.",
                    "Regency and district codes in the NIK cannot be 00.")
    if 1 <= dd <= 31:
        sex, day = "M", dd
    elif 41 <= dd <= 71:
        sex, day = "F", dd - 40
    else:
        raise _fail("nik_day", "Tanggal lahir pada NIK tidak sah (01-31, atau 41-71 untuk perempuan).",
                    "The birth day in the NIK is invalid (01-31, or 41-71 for women).")
    if serial == "0000":
        raise _fail("nik_serial", "Nomor urut NIK tidak boleh 0000.", "The NIK serial cannot be 0000.")
    birth = _birth_date(day, mm, yy, today)
    if birth is None:
        raise _fail("nik_date", "Tanggal lahir pada NIK bukan tanggal yang ada.",
                    "The birth date in the NIK is not a real date.")
    return NikInfo(pp, pp + rr, pp + rr + ss, birth, sex, serial)


def _birth_date(day: int, month: int, yy: int, today: date) -> date | None:
    # The century is the one that puts the date in the past with an age of at most 120.
    for century in (2000, 1900):
        try:
            candidate = date(century + yy, month, day)
        except ValueError:
            continue
        if candidate <= today and today.year - candidate.year <= 120:
            return candidate
    return None


def check_biodata_against_nik(
    nik: str, *, birth_date: date, sex: str, district_code: str, today: date
) -> list[NikProblem]:
    """All problems between the NIK and the entered biodata (empty when consistent)."""
    try:
        info = parse_nik(nik, today=today)
    except NikError as exc:
        return [exc.problem]
    problems: list[NikProblem] = []
    if info.sex != sex:
        problems.append(NikProblem(
            "nik_sex_mismatch", "sex",
            "Jenis kelamin tidak sesuai dengan NIK (tanggal +40 untuk perempuan).",
            "Sex does not match the NIK (women have day + 40)."))
    if info.birth_date != birth_date:
        problems.append(NikProblem(
            "nik_birth_mismatch", "birth_date",
            "Tanggal lahir tidak sesuai dengan NIK.", "The birth date does not match the NIK."))
    if info.district != district_code:
        problems.append(NikProblem(
            "nik_district_mismatch", "nik",
            f"NIK terdaftar di kecamatan {info.district}, bukan kecamatan stasiun ini ({district_code}).",
            f"The NIK belongs to district {info.district}, not this station's ({district_code})."))
    return problems


def mask(nik: str) -> str:
    """The only form of a NIK shown in diagnostics: first 4 and last 2 digits."""
    if len(nik) != 16:
        return "*" * len(nik)
    return nik[:4] + "*" * 10 + nik[-2:]
