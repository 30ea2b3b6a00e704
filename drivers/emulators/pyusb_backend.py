"""A pyusb backend that serves emulated devices, so real pyusb driver code runs in tests.

Pass an :class:`EmulatedBackend` as ``backend=`` to ``usb.core.find``: pyusb then reads
descriptors, string descriptors, configuration and endpoints from here, and every control
and bulk transfer the driver makes reaches the device model. Nothing here touches a kernel.

A device model implements :class:`UsbDeviceModel`: its descriptors plus three calls,
``control`` (class and vendor requests; standard GET_DESCRIPTOR string requests are answered
here from ``strings``), ``bulk_out`` and ``bulk_in``. Models signal a missing answer with
:class:`NoData` (the backend turns it into ``usb.core.USBTimeoutError`` without sleeping, so
tests never wait) and an unplug with :meth:`EmulatedBackend.unplug` (``USBError`` with
``ENODEV``, the code libusb reports for a vanished device).
"""

from __future__ import annotations

import array
import errno
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import usb.backend
import usb.core

# libusb error codes the real libusb1 backend would report; drivers may look at them.
LIBUSB_ERROR_TIMEOUT = -7
LIBUSB_ERROR_NO_DEVICE = -4
LIBUSB_ERROR_PIPE = -9

# Standard request codes and descriptor types (USB 2.0 §9.4).
GET_DESCRIPTOR = 0x06
DT_STRING = 0x03


class NoData(Exception):
    """Raised by a model's ``bulk_in`` when it has nothing to send (a timeout on the wire)."""


@dataclass
class EndpointDesc:
    """Standard endpoint descriptor fields pyusb reads."""

    bEndpointAddress: int
    bmAttributes: int = 0x02  # bulk
    wMaxPacketSize: int = 512
    bInterval: int = 0
    bLength: int = 7
    bDescriptorType: int = 0x05
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: list[int] = field(default_factory=list)


@dataclass
class InterfaceDesc:
    """Standard interface descriptor fields pyusb reads, plus its endpoints."""

    bInterfaceNumber: int
    bInterfaceClass: int
    bInterfaceSubClass: int
    bInterfaceProtocol: int
    endpoints: list[EndpointDesc]
    bAlternateSetting: int = 0
    iInterface: int = 0
    bLength: int = 9
    bDescriptorType: int = 0x04
    extra_descriptors: list[int] = field(default_factory=list)

    @property
    def bNumEndpoints(self) -> int:
        """Count of endpoints, as the descriptor states it."""
        return len(self.endpoints)


@dataclass
class ConfigDesc:
    """Standard configuration descriptor fields pyusb reads, plus its interfaces."""

    interfaces: list[InterfaceDesc]
    bConfigurationValue: int = 1
    iConfiguration: int = 0
    bmAttributes: int = 0xC0  # self-powered
    bMaxPower: int = 1
    bLength: int = 9
    bDescriptorType: int = 0x02
    extra_descriptors: list[int] = field(default_factory=list)

    @property
    def bNumInterfaces(self) -> int:
        """Count of interfaces."""
        return len({i.bInterfaceNumber for i in self.interfaces})

    @property
    def wTotalLength(self) -> int:
        """Length of the whole configuration, as the descriptors add up."""
        return self.bLength + sum(i.bLength + 7 * len(i.endpoints) for i in self.interfaces)


@dataclass
class DeviceDesc:
    """Device descriptor fields plus the bus position pyusb's ``Device`` copies."""

    idVendor: int
    idProduct: int
    bDeviceClass: int = 0
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    bcdUSB: int = 0x0200
    bMaxPacketSize0: int = 64
    bcdDevice: int = 0x0100
    iManufacturer: int = 1
    iProduct: int = 2
    iSerialNumber: int = 3
    bNumConfigurations: int = 1
    bLength: int = 18
    bDescriptorType: int = 0x01
    bus: int = 1
    address: int = 2
    port_number: int = 1
    port_numbers: tuple[int, ...] = (1,)
    speed: int = 3  # high speed


class UsbDeviceModel(Protocol):
    """What an emulated device offers the backend."""

    device: DeviceDesc
    configuration: ConfigDesc
    strings: dict[int, str]  # string descriptor index -> text (language 0x0409)

    def control(self, bm_request_type: int, b_request: int, w_value: int, w_index: int,
                data: bytes | int) -> bytes | int:
        """A class/vendor request: return the IN data, or the count of OUT bytes taken."""

    def bulk_out(self, endpoint: int, data: bytes) -> int:
        """Bytes the host sent to an OUT endpoint; return how many were taken."""

    def bulk_in(self, endpoint: int, size: int) -> bytes:
        """Up to ``size`` bytes for an IN endpoint, or raise :class:`NoData`."""


class _Handle:
    def __init__(self, dev: _Dev) -> None:
        self.dev = dev


class _Dev:
    def __init__(self, model: UsbDeviceModel) -> None:
        self.model = model
        self.plugged = True
        self.configuration = 0
        self.claimed: set[int] = set()


class EmulatedBackend(usb.backend.IBackend):  # type: ignore[misc]
    """A pyusb backend whose devices are in-process models."""

    def __init__(self, *models: UsbDeviceModel) -> None:
        super().__init__()
        self._devs = [_Dev(m) for m in models]
        self.transfers = 0  # bulk + control transfers served, for tests

    # -- helpers -------------------------------------------------------------------------

    def unplug(self, model: UsbDeviceModel) -> None:
        """Make ``model`` vanish: it stops enumerating and every transfer fails with ENODEV."""
        for d in self._devs:
            if d.model is model:
                d.plugged = False

    def plug(self, model: UsbDeviceModel) -> None:
        """Bring an unplugged model back."""
        for d in self._devs:
            if d.model is model:
                d.plugged = True

    @staticmethod
    def _check(dev: _Dev) -> None:
        if not dev.plugged:
            raise usb.core.USBError("No such device (it may have been disconnected)",
                                    LIBUSB_ERROR_NO_DEVICE, errno.ENODEV)

    @staticmethod
    def _interface(dev: _Dev, intf: int, alt: int) -> InterfaceDesc:
        for i in dev.model.configuration.interfaces:
            if i.bInterfaceNumber == intf and i.bAlternateSetting == alt:
                return i
        raise IndexError(f"no interface {intf} alt {alt}")

    # -- IBackend ------------------------------------------------------------------------

    def enumerate_devices(self) -> Iterator[_Dev]:
        """Plugged devices only, as a real bus would list them."""
        return iter([d for d in self._devs if d.plugged])

    def get_parent(self, dev: _Dev) -> None:
        """Emulated devices hang off a root hub we do not model."""
        return None

    def get_device_descriptor(self, dev: _Dev) -> DeviceDesc:
        """The model's device descriptor."""
        return dev.model.device

    def get_configuration_descriptor(self, dev: _Dev, config: int) -> ConfigDesc:
        """The model's one configuration (index 0)."""
        if config != 0:
            raise IndexError(f"no configuration index {config}")
        return dev.model.configuration

    def get_interface_descriptor(self, dev: _Dev, intf: int, alt: int, config: int) -> InterfaceDesc:
        """Interface descriptors, indexed as pyusb asks (position in the configuration)."""
        if config != 0:
            raise IndexError(f"no configuration index {config}")
        return dev.model.configuration.interfaces[intf]

    def get_endpoint_descriptor(self, dev: _Dev, ep: int, intf: int, alt: int, config: int) -> EndpointDesc:
        """Endpoint descriptor ``ep`` of interface position ``intf``."""
        return dev.model.configuration.interfaces[intf].endpoints[ep]

    def open_device(self, dev: _Dev) -> _Handle:
        """A handle; fails for an unplugged device."""
        self._check(dev)
        return _Handle(dev)

    def close_device(self, dev_handle: _Handle) -> None:
        """Release claims."""
        dev_handle.dev.claimed.clear()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        """Select the (only) configuration."""
        self._check(dev_handle.dev)
        if config_value not in (0, dev_handle.dev.model.configuration.bConfigurationValue):
            raise usb.core.USBError("Invalid configuration", LIBUSB_ERROR_PIPE, errno.EPIPE)
        dev_handle.dev.configuration = config_value

    def get_configuration(self, dev_handle: _Handle) -> int:
        """The active configuration value."""
        self._check(dev_handle.dev)
        return dev_handle.dev.configuration

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        """Only alt setting 0 exists."""
        self._check(dev_handle.dev)
        self._interface(dev_handle.dev, intf, altsetting)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        """Claim; fails when unplugged."""
        self._check(dev_handle.dev)
        dev_handle.dev.claimed.add(intf)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        """Release a claim."""
        dev_handle.dev.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        """No kernel driver is bound to an emulated device."""
        return False

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        """Nothing to detach."""

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        """Nothing to attach."""

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        """Endpoints never halt here."""
        self._check(dev_handle.dev)

    def reset_device(self, dev_handle: _Handle) -> None:
        """A reset keeps the model's state (a real printer keeps its media state too)."""
        self._check(dev_handle.dev)

    def bulk_write(self, dev_handle: _Handle, ep: int, intf: int, data: Any, timeout: int) -> int:
        """Hand OUT bytes to the model."""
        self._check(dev_handle.dev)
        self.transfers += 1
        return dev_handle.dev.model.bulk_out(ep, bytes(data))

    def bulk_read(self, dev_handle: _Handle, ep: int, intf: int, buff: array.array[int], timeout: int) -> int:
        """Fill ``buff`` in place from the model; no data is a timeout (without sleeping)."""
        self._check(dev_handle.dev)
        self.transfers += 1
        try:
            data = dev_handle.dev.model.bulk_in(ep, len(buff))
        except NoData:
            raise usb.core.USBTimeoutError("Operation timed out", LIBUSB_ERROR_TIMEOUT,
                                           errno.ETIMEDOUT) from None
        n = min(len(data), len(buff))
        buff[:n] = array.array("B", data[:n])
        return n

    def ctrl_transfer(self, dev_handle: _Handle, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: array.array[int], timeout: int) -> int:
        """Standard string descriptors here; class/vendor requests go to the model."""
        self._check(dev_handle.dev)
        self.transfers += 1
        device_to_host = bool(bmRequestType & 0x80)
        request_type = (bmRequestType >> 5) & 0x03
        if request_type == 0 and bRequest == GET_DESCRIPTOR and wValue >> 8 == DT_STRING:
            reply = self._string_descriptor(dev_handle.dev, wValue & 0xFF)
        elif request_type == 0:
            raise usb.core.USBError("Pipe error (request not supported)", LIBUSB_ERROR_PIPE, errno.EPIPE)
        else:
            out = dev_handle.dev.model.control(
                bmRequestType, bRequest, wValue, wIndex, len(data) if device_to_host else bytes(data)
            )
            if not device_to_host:
                return int(out) if isinstance(out, int) else len(data)
            reply = bytes(out) if not isinstance(out, int) else b""
        n = min(len(reply), len(data))
        data[:n] = array.array("B", reply[:n])
        return n

    @staticmethod
    def _string_descriptor(dev: _Dev, index: int) -> bytes:
        if index == 0:
            # Language id table: US English only.
            return bytes([4, DT_STRING, 0x09, 0x04])
        text = dev.model.strings.get(index)
        if text is None:
            raise usb.core.USBError("Pipe error (no such string)", LIBUSB_ERROR_PIPE, errno.EPIPE)
        body = text.encode("utf-16-le")
        return bytes([2 + len(body), DT_STRING]) + body
