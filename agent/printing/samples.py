"""A synthetic sample card (drawn face and scribble, no real person) for test cards and tests."""

from __future__ import annotations

from PIL import Image, ImageDraw

from agent.printing.render import CardData


def sample_photo() -> Image.Image:
    """A drawn 3:4 portrait on the red background of odd birth years."""
    photo = Image.new("RGB", (300, 400), (200, 40, 40))
    d = ImageDraw.Draw(photo)
    d.ellipse((80, 60, 220, 220), fill=(230, 190, 160))
    d.rectangle((60, 230, 240, 400), fill=(30, 30, 120))
    return photo


def sample_signature() -> Image.Image:
    """A drawn scribble, black on white."""
    sig = Image.new("L", (400, 150), 255)
    ImageDraw.Draw(sig).line([(10, 100), (100, 30), (200, 120), (390, 40)], fill=0, width=6)
    return sig


def sample_card(**changes: str) -> CardData:
    """The sample card; keyword arguments replace text fields (for layout tests)."""
    fields: dict[str, str] = {
        "nik": "6472010101900001",
        "name": "CONTOH KARTU UJI COBA",
        "birth_place": "SAMARINDA",
        "birth_date": "01-01-1990",
        "sex": "PEREMPUAN",
        "blood_type": "O",
        "address": "JL. PAHLAWAN NO. 12 GANG MAWAR BLOK C",
        "rt_rw": "004/012",
        "kel_desa": "SIDODADI",
        "kecamatan": "SAMARINDA ULU",
        "religion": "ISLAM",
        "marital_status": "KAWIN",
        "occupation": "KARYAWAN SWASTA",
        "citizenship": "WNI",
        "valid_until": "SEUMUR HIDUP",
        "province": "KALIMANTAN TIMUR",
        "regency": "KOTA SAMARINDA",
        "issue_place": "KOTA SAMARINDA",
        "issue_date": "29-11-2026",
    }
    fields.update(changes)
    return CardData(**fields, photo=sample_photo(), signature=sample_signature())
