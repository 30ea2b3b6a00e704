"""``rekam selftest [DEVICE]``: run device self-tests and save each test image as PNG."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "run device self-tests (through the running daemon, else directly) and save the test images"


def configure(parser: argparse.ArgumentParser) -> None:
    """DEVICE, --out, --json, --offline."""
    parser.add_argument("device", nargs="?", help="[devices.NAME] to test (default: every managed device)")
    parser.add_argument("--out", metavar="DIR", default=".", help="where to save NAME-selftest.png (default: .)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--offline", action="store_true",
                        help="open the device directly (only when the daemon is stopped: it holds the devices)")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every self-test passed, 1 when any failed."""
    from agent.cli import CliError
    from agent.config import config_path, load_config
    from agent.devices import managed_devices
    from agent.diagweb.client import DaemonUnavailableError, DiagClient, RemoteError

    cfg = load_config(config_path(getattr(args, "config", None)))
    names = sorted(managed_devices(cfg))
    if args.device is not None:
        if args.device not in cfg.devices:
            raise CliError(f"no [devices.{args.device}] in the configuration (have: {', '.join(names) or 'none'})")
        if args.device not in names:
            raise CliError(f"{args.device} is the printer; its own check is `rekam stock show` / the print queue")
        names = [args.device]
    if not names:
        raise CliError("no devices are configured")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    client = DiagClient(cfg)
    results: list[dict[str, Any]] = []
    via = "daemon"
    for name in names:
        entry: dict[str, Any] | None = None
        if not args.offline:
            try:
                entry = client.call("POST", f"/api/selftest/{name}",
                                    timeout=cfg.diagnostics.self_test_timeout_seconds + 30)
            except DaemonUnavailableError:
                entry = None
            except RemoteError as exc:
                entry = {"device": name, "ok": False, "steps": [{"step": "daemon", "passed": False,
                                                                  "detail": exc.message_en}]}
        if entry is None:
            via = "direct"
            entry = direct_selftest(cfg, name)
        png_b64 = entry.pop("image_png_base64", None)
        if png_b64:
            import base64

            path = out_dir / f"{name}-selftest.png"
            path.write_bytes(base64.b64decode(png_b64))
            entry["image"] = str(path)
        results.append(entry)
    if args.json:
        print(json.dumps({"via": via, "results": results}, indent=2))
    else:
        for e in results:
            print(f"{e['device']}: {'PASSED' if e['ok'] else 'FAILED'}" + (f" (image: {e['image']})" if e.get("image") else ""))
            for s in e["steps"]:
                print(f"  [{'OK  ' if s['passed'] else 'FAIL'}] {s['step']}: {s['detail']}")
    return 0 if all(e["ok"] for e in results) else 1


def direct_selftest(cfg: Any, name: str) -> dict[str, Any]:
    """Open the device with its driver, self-test, close; a device error is a failed step."""
    import base64

    from drivers import registry
    from drivers.errors import DeviceError

    dev = cfg.devices[name]
    try:
        driver = registry.build(dev)
        driver.open()
        try:
            result = driver.self_test()
        finally:
            driver.close()
    except DeviceError as exc:
        return {"device": name, "ok": False,
                "steps": [{"step": "open", "passed": False, "detail": f"{exc} -- {exc.hint_en}"}]}
    return {"device": name, "ok": bool(result.ok),
            "steps": [{"step": s, "passed": bool(p), "detail": d} for s, p, d in result.steps],
            "image_png_base64": base64.b64encode(result.image_png).decode() if result.image_png else None}
