"""The exception tree every driver raises, split by who must act.

    DeviceError                    root; ``hint_id``/``hint_en`` are plain-language advice
     +-- UserRetryError            the applicant or operator must try again (no finger,
     |                             finger moved, eyes closed, sign again); NOT a fault
     +-- DeviceFaultError          the device reported a fault; carries its ``code``
     +-- DeviceMissingError        the device is not there (unplugged, wrong path, no permission)
     +-- DeviceTimeoutError        no answer within the configured bound (also a TimeoutError)
     +-- DeviceProtocolError       the device answered something the codec refuses or did not
                                   expect; carries the ``response`` when there is one

Every error carries a hint in Indonesian and English so any front-end can show it, and
drivers always ``raise ... from`` the underlying cause.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Root of every error a driver raises."""

    hint_id: str = "Periksa perangkat dan coba lagi."
    hint_en: str = "Check the device and try again."

    def __init__(
        self,
        message: str,
        *,
        hint_id: str | None = None,
        hint_en: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(message)
        if hint_id is not None:
            self.hint_id = hint_id
        if hint_en is not None:
            self.hint_en = hint_en
        self.device = device

    def hint(self, language: str) -> str:
        """The plain-language hint in ``language`` ("id" or "en")."""
        return self.hint_id if language == "id" else self.hint_en


class UserRetryError(DeviceError):
    """The person in front of the device must try again; the device is fine."""

    hint_id = "Silakan ulangi."
    hint_en = "Please try again."


class DeviceFaultError(DeviceError):
    """The device reported a fault of its own."""

    def __init__(self, message: str, *, code: int | str | None = None, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.code = code


class DeviceMissingError(DeviceError):
    """The device is absent, unplugged or not accessible."""

    hint_id = "Perangkat tidak terdeteksi. Periksa kabel USB dan sambungkan ulang."
    hint_en = "Device not detected. Check the USB cable and plug it in again."


class DeviceTimeoutError(DeviceError, TimeoutError):
    """The device did not answer within the configured bound."""

    hint_id = "Perangkat tidak menjawab. Cabut dan pasang kembali perangkat."
    hint_en = "The device did not answer. Unplug it and plug it in again."


class DeviceProtocolError(DeviceError):
    """The device sent something invalid or unexpected."""

    def __init__(self, message: str, *, response: object = None, **kwargs: str | None) -> None:
        super().__init__(message, **kwargs)
        self.response = response
