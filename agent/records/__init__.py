"""ISO/IEC 19794 (2011) biometric records: finger (-4), face (-5), iris (-6).

Each module has ``encode(representations) -> bytes`` and ``decode(bytes) -> record``; errors are
:class:`RecordError` (a ValueError). Layouts follow the published descriptions in
../shared/research/protocols.md §5.1, not a certification tool (docs/packet-format.md).
"""

from agent.records._common import CaptureDevice, QualityBlock, RecordError

__all__ = ["CaptureDevice", "QualityBlock", "RecordError"]
