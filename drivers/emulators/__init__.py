"""Device emulators that speak the real wire protocols, for tests, benchmarks and ``rekam demo``.

Each emulator answers from in-memory state and can inject faults. Serial emulators reach a
driver in two ways, both through the driver's normal pyserial code path:

* a pyserial URL handler: ``serial.serial_for_url("emu://zfm?name=desk1")`` (see
  :mod:`drivers.emulators.protocol_emu`; :func:`install` registers it with pyserial);
* a pseudo-terminal pair served by a thread (:class:`drivers.emulators.pty.PtyLink`), which
  gives the driver a real file descriptor and a ``/dev/pts/N`` path.

Nothing here is ever reported as real hardware: drivers mark identities from ``emu://`` ports
as emulated.
"""

from __future__ import annotations

_PACKAGE = __name__


def install() -> None:
    """Make ``serial_for_url("emu://...")`` resolve to our handler (idempotent)."""
    # Imported here so that loading a non-serial emulator (camera, ten-print) stays light.
    import serial

    if _PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(_PACKAGE)
