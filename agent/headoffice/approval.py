"""Head office's approval step: a stored, verified packet -> the card it may print.

In production approval follows central de-duplication (AFIS) and a person's decision; here it
reads the verified packet and builds the print order's card fields, face photo and signature,
so the demo and the tests can exercise the whole path. Nothing read here is logged.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from PIL import Image, ImageOps

from agent.packet import read_packet
from agent.records import iso19794_5 as face_record
from agent.workflow.nik import PROVINCES

# Regencies (kabupaten/kota) by their 4-digit code, for the card header; extend per deployment.
REGENCIES = {
    "6471": "KOTA BALIKPAPAN",
    "6472": "KOTA SAMARINDA",
    "6474": "KOTA BONTANG",
    "3171": "KOTA ADM. JAKARTA SELATAN",
}


@dataclass(frozen=True)
class Approved:
    """What a print order needs from an approved enrollment."""

    packet_id: str
    station_id: str
    card: dict[str, str]
    photo: bytes
    signature: bytes | None


def card_fields(biodata: Mapping[str, Any], *, issue_place: str, issue_date: date) -> dict[str, str]:
    """The printed text of an e-KTP from the packet's biodata."""
    nik = str(biodata["nik"])
    born = date.fromisoformat(str(biodata["birth_date"]))
    return {
        "nik": nik,
        "name": str(biodata["name"]).upper(),
        "birth_place": str(biodata["birth_place"]).upper(),
        "birth_date": born.strftime("%d-%m-%Y"),
        "sex": "LAKI-LAKI" if biodata["sex"] == "M" else "PEREMPUAN",
        "blood_type": str(biodata["blood_type"]),
        "address": str(biodata["address"]).upper(),
        "rt_rw": f"{int(biodata['rt']):03d}/{int(biodata['rw']):03d}",
        "kel_desa": str(biodata["kelurahan"]).upper(),
        "kecamatan": str(biodata["kecamatan"]).upper(),
        "religion": str(biodata["religion"]).upper(),
        "marital_status": str(biodata["marital_status"]).upper(),
        "occupation": str(biodata["occupation"]).upper(),
        "citizenship": str(biodata["citizenship"]).upper(),
        # e-KTPs issued since 2014 are valid for life (Perpres 112/2013, UU 24/2013).
        "valid_until": "SEUMUR HIDUP",
        "province": PROVINCES.get(nik[:2], nik[:2]).upper(),  # the card prints "PROVINSI "
        "regency": REGENCIES.get(nik[:4], f"KABUPATEN/KOTA {nik[:4]}"),
        "issue_place": issue_place.upper(),
        "issue_date": issue_date.strftime("%d-%m-%Y"),
    }


def approve_packet(path: Path, *, headoffice_private_key: X25519PrivateKey,
                   station_public_keys: Mapping[str, Ed25519PublicKey], issue_place: str,
                   issue_date: date) -> Approved:
    """Verify and read a stored packet; return the card, face JPEG and signature PNG."""
    photo: bytes | None = None
    signature: bytes | None = None
    with path.open("rb") as fh:
        header, manifest, items = read_packet(fh, headoffice_private_key=headoffice_private_key,
                                              station_public_keys=station_public_keys)
        for item in items:
            if item.name == "face":
                record = face_record.decode(item.read())
                photo = record.representations[0].image
            elif item.name == "signature":
                signature = item.read()
    if photo is None:
        raise ValueError("packet has no face item")
    card = card_fields(manifest["biodata"], issue_place=issue_place, issue_date=issue_date)
    return Approved(manifest["packet_id"], manifest["station_id"], card, card_photo(photo),
                    card_signature(signature) if signature else None)


# The card's photo box is about 2.5 x 3.2 cm: 300 x 400 pixels at 300 dpi is all it can show.
CARD_PHOTO_SIZE = (300, 400)
CARD_SIGNATURE_SIZE = (360, 120)


def card_photo(jpeg: bytes) -> bytes:
    """The enrollment photo cut to the card's 3:4 photo box and re-encoded small (an order is
    a small signed message; the full-resolution photo stays in head office's archive)."""
    src = Image.open(io.BytesIO(jpeg))
    src.draft("RGB", (CARD_PHOTO_SIZE[0] * 2, CARD_PHOTO_SIZE[1] * 2))
    img = ImageOps.fit(src.convert("RGB"), CARD_PHOTO_SIZE, method=Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


def card_signature(png: bytes) -> bytes:
    """The signature scaled to the card's signature box, as a small 1-bit PNG."""
    img = Image.open(io.BytesIO(png)).convert("L")
    img.thumbnail(CARD_SIGNATURE_SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.point(lambda v: 255 if v > 160 else 0).convert("1").save(out, "PNG", optimize=True)
    return out.getvalue()
