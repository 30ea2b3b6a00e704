"""Plain-language guidance for each step and each failure, in Indonesian and English.

The API returns these texts so any front-end can show them; the config picks the default
language and a request may ask for the other.
"""

from __future__ import annotations

from typing import Final

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "step.biodata": ("Isi data penduduk sesuai dokumen (KK).",
                     "Enter the applicant's details as on the family card (KK)."),
    "step.face": ("Minta pemohon duduk tegak, menatap kamera, tanpa kacamata dan penutup kepala yang menutupi wajah.",
                  "Ask the applicant to sit upright and look at the camera, without glasses or anything covering the face."),
    "step.fingers": ("Rekam sepuluh sidik jari: letakkan jari rata di tengah pemindai, tekan ringan.",
                     "Record all ten fingers: place each finger flat in the middle of the scanner and press lightly."),
    "step.irises": ("Minta pemohon membuka mata lebar dan menatap pemindai iris tanpa berkedip.",
                    "Ask the applicant to open their eyes wide and look into the iris scanner without blinking."),
    "step.signature": ("Minta pemohon menandatangani di bantalan tanda tangan.",
                       "Ask the applicant to sign on the signature pad."),
    "step.review": ("Periksa kembali semua data dan gambar bersama pemohon, lalu simpan.",
                    "Review every detail and image with the applicant, then save."),
    "step.sealed": ("Tersimpan. Data akan dikirim ke Disdukcapil saat jaringan tersedia.",
                    "Saved. The record will be sent to head office when the link is up."),
    "retry.quality": ("Kualitas kurang ({score} < {threshold}). Ulangi: {hint}",
                      "Quality too low ({score} < {threshold}). Try again: {hint}"),
    "retry.force_offered": ("Sudah {attempts} kali gagal. Ulangi, catat pengecualian, atau terima dengan alasan.",
                            "Failed {attempts} times. Retry, record an exception, or accept with a reason."),
    "accepted": ("Bagus. Kualitas {score}.", "Good. Quality {score}."),
    "finger.hint": ("bersihkan jari dan kaca pemindai, letakkan jari rata.",
                    "clean the finger and the scanner glass, place the finger flat."),
    "face.hint": ("tatap kamera, wajah di tengah, cahaya cukup.",
                  "look at the camera, face in the middle, enough light."),
    "iris.hint": ("buka mata lebih lebar dan jangan bergerak.",
                  "open the eyes wider and keep still."),
    "signature.hint": ("tanda tangan lebih jelas di dalam kotak.",
                       "sign more clearly inside the box."),
    "device.busy": ("Perangkat sedang dipakai oleh layar lain. Tunggu sebentar.",
                    "The device is being used by another screen. Wait a moment."),
    "device.missing": ("Perangkat tidak terdeteksi. Periksa kabel USB.",
                       "Device not detected. Check the USB cable."),
    "incomplete": ("Belum lengkap: {items}. Rekam atau catat pengecualian.",
                   "Not complete: {items}. Capture them or record an exception."),
    "journal.full": ("Penyimpanan penuh: {detail}", "Storage full: {detail}"),
}


def say(key: str, language: str, **values: object) -> str:
    """The text for ``key`` in ``language`` ("id" or "en"), with ``values`` filled in."""
    text_id, text_en = TEXTS[key]
    return (text_id if language == "id" else text_en).format(**values)


def both(key: str, **values: object) -> dict[str, str]:
    """Both languages, for API answers: {"id": ..., "en": ...}."""
    return {"id": say(key, "id", **values), "en": say(key, "en", **values)}
