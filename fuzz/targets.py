"""One fuzz target per parser that reads outside input: bytes in, only the declared error out.

Each target takes arbitrary bytes, hands them to one parser (directly, or as a mutation of a
valid sample so the fuzzer gets past the first checks), and swallows only the error that
parser documents. Anything else escaping is a bug: atheris reports it as a crash
(fuzz/run.py), hypothesis as a failure (tests/test_fuzz_*.py). Some targets also assert an
invariant of what they accept (a NIK that parses is 16 ASCII digits, a signed message that
opens came from the trusted key and names this station, ...).

The samples are built once at import with fixed keys, so runs are reproducible.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent import envelope as env
from agent import packet
from agent.config import ConfigError, load_config
from agent.export import ImportFolderError, open_export
from agent.keys import key_id
from agent.printing.orders import CARD_FIELDS, OrderRejectedError, order_from_body
from agent.records import iso19794_4 as fir
from agent.records import iso19794_5 as fac
from agent.records import iso19794_6 as iir
from agent.records._common import RecordError
from agent.uplink.incoming import IncomingValidator, RejectedMessage, parse_ack
from agent.uplink.topics import Topics
from agent.workflow.nik import NikError, parse_nik
from firmware_protocols import evdev, evolis, uevent, zfm
from firmware_protocols.errors import CodecError

STATION_ID = "st-fuzz"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TODAY = date(2026, 11, 29)
HO_SIGN = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HO_KID = key_id(HO_SIGN.public_key())
HO_KEYS = {HO_KID: HO_SIGN.public_key()}
HO_ENC = X25519PrivateKey.from_private_bytes(b"\x02" * 32)
STATION_SIGN = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
STATION_KEYS = {STATION_ID: STATION_SIGN.public_key()}
TOPICS = Topics(STATION_ID)

Target = Callable[[bytes], None]


def mutate(sample: bytes, data: bytes) -> bytes:
    """Apply edits described by ``data`` to ``sample``: 3-byte ops (kind, position, value).

    A cheap, deterministic mutator so byte-level fuzzers and hypothesis both reach the checks
    that sit behind a valid header (checksums, signatures, lengths).
    """
    out = bytearray(sample)
    for i in range(0, len(data) - 2, 3):
        kind, pos, value = data[i] % 4, data[i + 1], data[i + 2]
        at = (pos * max(len(out), 1)) // 256 if out else 0
        if kind == 0 and out:
            out[min(at, len(out) - 1)] ^= value or 1
        elif kind == 1:
            out.insert(at, value)
        elif kind == 2 and out:
            del out[min(at, len(out) - 1)]
        else:
            del out[at:]  # truncate
    return bytes(out)


# --------------------------------------------------------------------------- device codecs


_ZFM_SAMPLE = (zfm.encode_command("GenImg") + zfm.encode_reply("GenImg", 0)
               + b"".join(zfm.encode_data_stream(bytes(range(200)), 32)))


def zfm_stream(data: bytes) -> None:
    """ZFM packet decoder fed in slices; every ack parsed as the reply of some instruction."""
    split = data[0] if data else 1
    decoder = zfm.PacketDecoder()
    stream = mutate(_ZFM_SAMPLE, data) if split % 2 else data
    names = sorted(zfm.INSTRUCTIONS)
    receiver = zfm.DataStreamReceiver(32, 4096)
    step = max(1, split)
    for i in range(0, len(stream) + 1, step):
        try:
            events = decoder.feed(stream[i:i + step] if i < len(stream) else b"")
        except CodecError:
            return
        assert decoder.buffered <= decoder.max_buffer
        for ev in events:
            try:
                if isinstance(ev, zfm.AckPacket):
                    zfm.parse_reply(names[(split + len(ev.payload)) % len(names)], ev)
                elif isinstance(ev, zfm.CommandPacket):
                    zfm.parse_command(ev)
                elif isinstance(ev, zfm.DataPacket):
                    receiver.add(ev)
            except CodecError:
                pass


def evolis_commands(data: bytes) -> None:
    """Evolis host-to-printer decoder (what the emulator parses), whole and byte by byte."""
    for stream in (data, mutate(evolis.encode_command("Pr", "3") + evolis.encode_command("Ss"), data)):
        try:
            evolis.CommandDecoder().feed(stream)
            dec = evolis.CommandDecoder()
            for b in stream[:256]:
                dec.feed(bytes([b]))
        except CodecError:
            pass


def evolis_replies(data: bytes) -> None:
    """Evolis printer-to-host replies (what the driver parses) and the KO decompressor."""
    try:
        evolis.ReplyDecoder().feed(data)
    except CodecError:
        pass
    try:
        evolis.decompress_ko(data, data[0] if data else 0)
    except CodecError:
        pass


def evdev_events(data: bytes) -> None:
    """evdev decoder in both layouts, then the stroke assembler over whatever came out."""
    for layout in ("64", "32"):  # the 64-bit and 32-bit struct input_event
        dec = evdev.EvdevDecoder(layout)
        try:
            events = dec.feed(data)
            evdev.StrokeAssembler(max_points=64).feed(events)
            dec.close()
        except CodecError:
            pass


# --------------------------------------------------------------------------- JSON and envelopes


def strict_json(data: bytes) -> None:
    """strict_json_loads: only MalformedError; what it accepts is a dict within the depth bound."""
    try:
        value = env.strict_json_loads(data)
    except env.MalformedError:
        return
    assert isinstance(value, dict)


def _envelope(body_bytes: bytes, topic: str, key: Ed25519PrivateKey = HO_SIGN) -> bytes:
    sig = key.sign(b"rekam-envelope-v1\0" + topic.encode() + b"\0" + body_bytes)
    return json.dumps({"v": 1, "kid": HO_KID, "body": base64.b64encode(body_bytes).decode(),
                       "sig": base64.b64encode(sig).decode()}).encode()


def _valid_body(kind: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "station_id": STATION_ID, "id": "m-1",
                            "issued_at": "2026-11-29T07:59:00Z", "expires_at": "2026-11-29T08:10:00Z"}
    body.update(extra)
    return body


_ACK_TOPIC = TOPICS.leaf("ack")
_ENVELOPE_SAMPLE = _envelope(json.dumps(_valid_body("ack", packet_id="p1", status="missing",
                                                    missing=[1, 2], chunk_size=65536)).encode(),
                             _ACK_TOPIC)


def envelope_raw(data: bytes) -> None:
    """open_envelope on raw or mutated payloads: only EnvelopeError; nothing forged opens."""
    for payload in (data, mutate(_ENVELOPE_SAMPLE, data)):
        try:
            body = env.open_envelope(payload, topic=_ACK_TOPIC, public_keys=HO_KEYS,
                                     station_id=STATION_ID, now=NOW)
        except env.EnvelopeError:
            continue
        # Only the untouched sample (or a re-encoding of the same signed body) may open.
        assert body["station_id"] == STATION_ID


def incoming_signed(data: bytes) -> None:
    """Hostile bodies that ARE signed by head office: the validator and schema checks hold.

    This is the compromised-or-buggy head-office case: signature checks pass, so everything
    rests on the body's schema (ack, print order, command).
    """
    leafs = ("ack", "print/order", "command")
    leaf = leafs[data[0] % 3] if data else "ack"
    topic = TOPICS.leaf(leaf)
    validator = IncomingValidator(TOPICS, lambda: HO_KEYS)
    try:
        _leaf, body = validator.open(topic, _envelope(data[1:], topic), NOW)
    except RejectedMessage:
        return
    try:
        if leaf == "ack":
            parse_ack(body)
        elif leaf == "print/order":
            order_from_body(body)
    except (RejectedMessage, OrderRejectedError):
        pass


# --------------------------------------------------------------------------- messages by schema


def ack_body(data: bytes) -> None:
    """parse_ack on any strict-JSON object: only RejectedMessage."""
    try:
        body = env.strict_json_loads(data)
    except env.MalformedError:
        return
    # parse_ack sees only bodies that open_envelope passed, which guarantees the common fields
    # are non-empty strings; keep that precondition and let everything else be hostile.
    merged = {**_valid_body("ack"), **body}
    for name in env.REQUIRED_BODY_FIELDS:
        if not isinstance(merged.get(name), str) or not merged[name]:
            merged[name] = _valid_body("ack")[name]
    try:
        ack = parse_ack(merged)
    except RejectedMessage:
        return
    assert ack.status in ("complete", "missing", "rejected")
    assert all(type(i) is int and i >= 0 for i in ack.missing)
    assert ack.status != "missing" or ack.chunk_size >= 1


def _order_sample() -> dict[str, Any]:
    from agent.printing.samples import sample_card, sample_photo

    buf = io.BytesIO()
    sample_photo().save(buf, format="PNG")
    card = sample_card()
    return _valid_body("print_order", order_id="ord-1",
                       card={f: getattr(card, f) for f in CARD_FIELDS},
                       photo=base64.b64encode(buf.getvalue()).decode())


_ORDER: dict[str, Any] | None = None


def order_body(data: bytes) -> None:
    """order_from_body on any strict-JSON object, alone and merged into a valid order."""
    global _ORDER
    if _ORDER is None:
        _ORDER = _order_sample()
    try:
        body = env.strict_json_loads(data)
    except env.MalformedError:
        return
    card_over = body.pop("card", None)
    merged = {**_ORDER, **body}
    if isinstance(card_over, dict):
        merged["card"] = {**_ORDER["card"], **card_over}
    elif card_over is not None:
        merged["card"] = card_over
    for candidate in (body, merged):
        try:
            order_from_body(candidate)
        except OrderRejectedError:
            pass


def command_body(data: bytes) -> None:
    """RemoteCommands.handle on any verified-looking command body: every outcome is "done" or
    "refused" (never "failed", the mark of an unexpected exception), and settings.json only ever
    holds whitelisted keys (no path, token or key setting can be reached from head office)."""
    from agent.config import parse_config
    from agent.remote import SETTABLE, RemoteCommands

    try:
        body = env.strict_json_loads(data)
    except env.MalformedError:
        return
    with tempfile.TemporaryDirectory(prefix="rekam-fuzz-") as tmp:
        state = Path(tmp)
        (state / "keys").mkdir(mode=0o700)
        cfg = parse_config({"station": {"id": STATION_ID, "district_code": "647201", "state_dir": str(state)}})
        events: list[dict[str, Any]] = []

        def add_event(kind: str, payload: dict[str, Any]) -> int:
            events.append(payload)
            return len(events)

        remote = RemoteCommands(cfg, add_event=add_event,
                                diagnostics=list, telemetry_now=lambda: None, keys_dir=state / "keys")
        remote.handle({**_valid_body("command"), **body})
        assert len(events) == 1 and events[0]["outcome"] in ("done", "refused"), events
        settings = state / "settings.json"
        if settings.exists():
            for section, values in json.loads(settings.read_text()).items():
                assert set(values) <= set(SETTABLE[section])


_IMAGES: list[bytes] = []


def card_image(data: bytes) -> None:
    """image_from_bytes (photo and signature of a print order) on raw and mutated JPEG/PNG:
    only CardLayoutError."""
    from agent.printing.render import CardLayoutError, image_from_bytes

    if not _IMAGES:
        from agent.printing.samples import sample_photo, sample_signature

        for img, fmt in ((sample_photo(), "JPEG"), (sample_photo(), "PNG"), (sample_signature(), "PNG")):
            buf = io.BytesIO()
            img.save(buf, format=fmt)
            _IMAGES.append(buf.getvalue())
    for blob in (data, mutate(_IMAGES[data[0] % len(_IMAGES) if data else 0], data[1:])):
        try:
            image_from_bytes(blob, field_name="photo")
        except CardLayoutError:
            pass


def nik(data: bytes) -> None:
    """parse_nik on any text: only NikError; an accepted NIK is 16 ASCII digits."""
    text = data.decode("utf-8", errors="replace")
    for candidate in (text, text[:16], "31710117" + text[:8]):
        try:
            parse_nik(candidate, today=TODAY)
        except NikError:
            continue
        assert len(candidate) == 16 and candidate.isascii() and candidate.isdigit()


# --------------------------------------------------------------------------- records, packets


def _record_samples() -> list[tuple[Any, bytes]]:
    finger = fir.encode([fir.FingerImage(position=1, image=b"\x00" * 40, compression=0,
                                         width=8, height=5)], certification_flag=True)
    face = fac.encode([fac.FaceImage(image=b"\xff\xd8" + b"\x00" * 30, data_type=0, width=4,
                                     height=4, landmarks=(fac.Landmark(1, 1, 2, 3),))])
    iris = iir.encode([iir.IrisImage(eye=1, image=b"\x89PNG" + b"\x00" * 30, image_format=14,
                                     width=4, height=4)], certification_flag=True)
    return [(fir, finger), (fac, face), (iir, iris)]


_RECORDS = _record_samples()


def records(data: bytes) -> None:
    """ISO 19794-4/-5/-6 decoders on raw and mutated records: only RecordError."""
    codec, sample = _RECORDS[data[0] % 3 if data else 0]
    for blob in (data, mutate(sample, data)):
        try:
            codec.decode(blob)
        except RecordError:
            pass


def _packet_sample() -> bytes:
    out = io.BytesIO()
    w = packet.PacketWriter(out, station_id=STATION_ID, packet_id="01900000-0000-7000-8000-000000000001",
                            station_signing_key=STATION_SIGN, headoffice_encryption_key=HO_ENC.public_key(),
                            created_at=NOW, chunk_size=1024)
    w.add_item("finger-1", bytes(range(256)) * 6, kind="finger", format="iso19794-4", quality=80,
               retries=0, captured_at=NOW, position="1", device="emu")
    w.add_item("face", b"\xff\xd8" * 100, kind="face", format="iso19794-5", quality=70, retries=0,
               captured_at=NOW, position="face", device="emu")
    w.finish(biodata={"nik": "3171011708450001"}, operator_id="op-1", devices=[], exceptions=[],
             stages={})
    return out.getvalue()


_PACKET = _packet_sample()


def packet_reader(data: bytes) -> None:
    """read_packet on raw and mutated packets: only PacketError; a changed packet never verifies."""
    for blob in (data, mutate(_PACKET, data)):
        try:
            packet.verify_packet(io.BytesIO(blob), headoffice_private_key=HO_ENC,
                                 station_public_keys=STATION_KEYS)
        except packet.PacketError:
            continue
        assert blob == _PACKET, "a modified packet verified"


# --------------------------------------------------------------------------- files from outside


def config_file(data: bytes) -> None:
    """load_config on arbitrary file contents: only ConfigError."""
    with tempfile.TemporaryDirectory(prefix="rekam-fuzz-") as tmp:
        path = Path(tmp) / "agent.toml"
        path.write_bytes(data)
        try:
            load_config(path)
        except ConfigError:
            pass


_EXPORT_FILE = "01900000-0000-7000-8000-000000000001.rkp"


def export_manifest(data: bytes) -> None:
    """open_export + re-hash on an arbitrary manifest: only ImportFolderError, nothing outside read.

    A bait file sits next to the export folder; a manifest that makes the reader touch it
    (``../bait``, an absolute path, a symlink) would be path traversal.
    """
    with tempfile.TemporaryDirectory(prefix="rekam-fuzz-") as tmp:
        root = Path(tmp)
        folder = root / "export"
        folder.mkdir()
        bait = root / "bait"
        bait.write_bytes(b"outside")
        (folder / _EXPORT_FILE).write_bytes(b"x" * 10)
        (folder / "manifest.json").write_bytes(data)
        try:
            opened = open_export(folder)
            for p in opened:
                # Every file the reader will hash or import is inside the folder itself.
                assert p.path.resolve().parent == folder.resolve()
        except ImportFolderError:
            pass


_UEVENT_SAMPLE = (b"add@/devices/pci0000:00/0000:00:14.0/usb1/1-2\0ACTION=add\0"
                  b"DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2\0SUBSYSTEM=usb\0"
                  b"DEVTYPE=usb_device\0PRODUCT=2109/7638/100\0SEQNUM=4711\0")


def uevent_datagram(data: bytes) -> None:
    """parse_uevent (the hot-plug listener's codec) on raw and mutated kernel datagrams: only
    FrameError; what it accepts has a known action, a device path and round-trips."""
    raw = mutate(_UEVENT_SAMPLE, data) if data[:1] and data[0] % 2 else data
    try:
        ev = uevent.parse_uevent(raw)
    except CodecError:
        return
    assert ev.action in uevent.ACTIONS and ev.devpath
    assert uevent.parse_uevent(uevent.encode_uevent(ev)) == ev


TARGETS: dict[str, Target] = {
    "zfm": zfm_stream,
    "evolis_commands": evolis_commands,
    "evolis_replies": evolis_replies,
    "evdev": evdev_events,
    "strict_json": strict_json,
    "envelope": envelope_raw,
    "incoming_signed": incoming_signed,
    "ack": ack_body,
    "order": order_body,
    "card_image": card_image,
    "command": command_body,
    "nik": nik,
    "records": records,
    "packet": packet_reader,
    "config": config_file,
    "export": export_manifest,
    "uevent": uevent_datagram,
}


def valid_export_manifest(**over: Any) -> bytes:
    """A manifest that opens, for the folder export_manifest builds (seed for mutation)."""
    doc: dict[str, Any] = {
        "format": "rekam-export", "v": 1, "station_id": STATION_ID,
        "created_at": (NOW - timedelta(hours=1)).isoformat(), "packet_count": 1, "total_bytes": 10,
        "packets": [{"packet_id": _EXPORT_FILE[:-4], "file": _EXPORT_FILE, "size": 10,
                     "sha256": "0" * 64, "station_id": STATION_ID, "created_at": NOW.isoformat()}],
    }
    doc.update(over)
    return json.dumps(doc).encode()
