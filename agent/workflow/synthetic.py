"""Synthetic applicants for the demo, `rekam enroll` and the tests: never real people.

Deterministic from a seed; the NIK is consistent with the birth date, sex and the station's
district, so the workflow's checks pass. ``marker`` lets the canary scan plant a random string
in the name and address and then look for it in plaintext on disk and in logs.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

GIVEN_M = ("Budi", "Agus", "Rahmat", "Andi", "Yusuf", "Hendra", "Arif", "Dedi", "Fajar", "Rizky")
GIVEN_F = ("Siti", "Dewi", "Nur", "Rina", "Ayu", "Putri", "Fitri", "Wulan", "Indah", "Lestari")
FAMILY = ("Santoso", "Wijaya", "Saputra", "Hidayat", "Kurniawan", "Lubis", "Siregar", "Nasution",
          "Pratama", "Setiawan")
# The urban villages (kelurahan) of Kecamatan Samarinda Ilir, where the field study was made.
KELURAHAN = ("Sidodadi", "Sungai Dama", "Selili", "Sidomulyo", "Pelabuhan")
STREETS = ("Jl. Otto Iskandardinata", "Jl. Jelawat", "Jl. Pesut", "Jl. Lambung Mangkurat", "Jl. Belatuk")
OCCUPATIONS = ("Karyawan Swasta", "Wiraswasta", "Pelajar/Mahasiswa", "Mengurus Rumah Tangga", "Nelayan")
RELIGIONS = ("Islam", "Islam", "Islam", "Kristen", "Katolik", "Hindu", "Buddha")


def applicant(seed: int, *, district_code: str = "647201", today: date | None = None,
              marker: str = "") -> dict[str, Any]:
    """One synthetic applicant's biodata (the fields the station API expects)."""
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    sex = rng.choice("MF")
    born = today - timedelta(days=rng.randint(17 * 365 + 5, 80 * 365))
    day = born.day + (40 if sex == "F" else 0)
    nik = f"{district_code}{day:02d}{born.month:02d}{born.year % 100:02d}{rng.randint(1, 9999):04d}"
    given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
    name = f"{given} {rng.choice(FAMILY)}{(' ' + marker) if marker else ''}".upper()
    return {
        "nik": nik,
        "name": name,
        "birth_place": "SAMARINDA",
        "birth_date": born.isoformat(),
        "sex": sex,
        "blood_type": rng.choice(("A", "B", "AB", "O", "-")),
        "address": f"{rng.choice(STREETS).upper()} NO. {rng.randint(1, 200)}{(' ' + marker) if marker else ''}",
        "rt": f"{rng.randint(1, 40):03d}",
        "rw": f"{rng.randint(1, 12):03d}",
        "kelurahan": rng.choice(KELURAHAN).upper(),
        "kecamatan": "SAMARINDA ILIR",
        "religion": rng.choice(RELIGIONS),
        "marital_status": rng.choice(("Belum Kawin", "Kawin", "Kawin", "Cerai Hidup")),
        "occupation": rng.choice(OCCUPATIONS),
        "citizenship": "WNI",
    }
