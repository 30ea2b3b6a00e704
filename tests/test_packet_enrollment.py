"""A real workflow session sealed through JournalSealer into the real journal, then read back
as head office would: ISO records inside, manifest fields, exceptions, errors mapped."""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from agent import keys
from agent.config import JournalConfig, parse_config
from agent.journal import Journal
from agent.packet import read_packet
from agent.packet.enrollment import JournalSealer, record_for
from agent.records import RecordError
from agent.records import iso19794_4 as fir
from agent.records import iso19794_5 as fac
from agent.records import iso19794_6 as iir
from agent.records.wsq import compress_finger
from agent.workflow.session import Capture, Session, WorkflowError
from agent.workflow.synthetic import applicant

TODAY = date(2026, 11, 29)
CFG = parse_config({"station": {"district_code": "647201", "language": "en"}})


def image(fmt: str, mode: str = "L", size: tuple[int, int] = (64, 80)) -> bytes:
    y, x = np.mgrid[0:size[1], 0:size[0]]
    grey = Image.fromarray((127 + 100 * np.sin(np.hypot(x, y) / 3)).astype("uint8"), "L")
    img = grey.convert(mode)
    buf = io.BytesIO()
    if fmt == "wsq":
        return compress_finger(grey)[0]
    img.save(buf, {"png": "PNG", "jpeg": "JPEG"}[fmt])
    return buf.getvalue()


class Provider:
    """Good captures in the formats the station's devices produce (synthetic images)."""

    def capture(self, item: str, *, language: str,
                context: Mapping[str, Any] | None = None) -> Capture:
        dev = {"name": f"emu-{item.split('.')[0]}", "model": "emulator", "serial": "E1"}
        if item == "face":
            return Capture(image("jpeg", "RGB"), "jpeg", 90, 64, 80, dev)
        if item.startswith("finger."):
            return Capture(image("wsq"), "wsq", 90, 64, 80, dev, ppi=500)
        if item.startswith("iris."):
            return Capture(image("png"), "png", 90, 64, 80, dev)
        return Capture(image("png"), "png", 90, 64, 80, dev)  # signature, exception photos


def sealed_ready_session() -> Session:
    s = Session(CFG, operator_id="op-7")
    s.set_biodata(applicant(1, today=TODAY), today=TODAY)
    s.next()
    p = Provider()
    s.capture("face", p)
    s.next()
    for pos in range(1, 10):
        s.capture(f"finger.{pos}", p)
    s.record_exception("finger.10", "amputated", "left little finger missing", p)
    s.next()
    s.capture("iris.right", p)
    s.capture("iris.left", p)
    s.next()
    s.capture("signature", p)
    s.next()
    return s


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    kdir = tmp_path / "keys"
    keys.init_station_keys(kdir)
    ho = keys.generate_headoffice_keys(tmp_path / "ho", now=datetime.now(UTC))
    keys.trust_headoffice(kdir, (tmp_path / "ho" / keys.BUNDLE).read_bytes())
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return kdir, ho, state


def test_session_sealed_into_journal_reads_back_as_iso_records(setup: Any) -> None:
    kdir, ho, state = setup
    with Journal.open(state, JournalConfig(free_disk_floor_bytes=0)) as j:
        sealer = JournalSealer.from_keys_dir(j, "st-1", kdir)
        s = sealed_ready_session()
        pid = s.seal(sealer)
        info = j.packet(pid)
        assert info is not None and info.state == "queued"
        data = j.read_range(pid, 0, info.size)
    header, manifest, items = read_packet(
        io.BytesIO(data), headoffice_private_key=ho.encryption,
        station_public_keys={"st-1": keys.load_station_public_key(kdir)})
    got = {it.name: (it.info, it.read()) for it in items}
    assert manifest["biodata"]["nik"] == applicant(1, today=TODAY)["nik"]
    assert manifest["operator_id"] == "op-7"
    assert manifest["exceptions"][0]["item"] == "finger.10"
    assert manifest["exceptions"][0]["reason"] == "amputated"
    assert "exception.finger.10" in got and "finger.10" not in got
    assert {d["name"] for d in manifest["devices"]} >= {"emu-face", "emu-finger", "emu-iris"}
    assert "sealing" in manifest["stages"]

    face = fac.decode(got["face"][1]).representations[0]
    assert face.data_type == fac.ImageDataType.JPEG and face.quality[0].score == 90
    assert Image.open(io.BytesIO(face.image)).format == "JPEG"
    finger = fir.decode(got["finger.2"][1]).representations[0]
    assert finger.position == 2 and finger.compression == fir.Compression.WSQ
    assert finger.captured_at is not None
    iris = iir.decode(got["iris.left"][1]).representations[0]
    assert iris.eye == iir.EyeLabel.LEFT and iris.image_format == iir.ImageFormat.MONO_PNG
    assert got["signature"][0]["format"] == "png"
    assert got["finger.2"][0]["format"] == "iso19794-4" and got["finger.2"][0]["position"] == "2"


def test_journal_full_becomes_workflow_error_and_keeps_nothing(setup: Any) -> None:
    kdir, _ho, state = setup
    cfg = JournalConfig(free_disk_floor_bytes=0, max_packet_bytes=4096)
    with Journal.open(state, cfg) as j:
        s = sealed_ready_session()
        with pytest.raises(WorkflowError) as exc:
            s.seal(JournalSealer.from_keys_dir(j, "st-1", kdir))
        assert exc.value.code == "journal_full" and exc.value.status == 507
        assert j.outbox(10) == []
        assert s.packet_id is None  # the session stays in review; nothing is lost


def test_missing_keys_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyMissingError):
        JournalSealer.from_keys_dir(object(), "st-1", tmp_path)


def test_record_for_refuses_unknown_formats() -> None:
    cap = Capture(b"x", "bmp", 50, 1, 1, {})
    for key in ("finger.1", "face", "iris.left"):
        with pytest.raises(RecordError):
            record_for(key, cap, None)
    assert record_for("signature", cap, None) == (b"x", "bmp")
