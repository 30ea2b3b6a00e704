"""The one exception root of all codecs.

    CodecError               anything a codec refuses
     +-- FrameError          bytes that cannot be a frame (bad length, checksum, start code)
     +-- BufferOverflowError an incomplete frame grew past the decoder's bound
     +-- EncodeError         a command or value that cannot be put on the wire

Arbitrary input bytes must never raise anything else from a codec.
"""


class CodecError(Exception):
    """Root of every error a codec raises."""


class FrameError(CodecError):
    """Bytes that cannot be a valid frame."""


class BufferOverflowError(CodecError):
    """An incomplete frame exceeded the decoder's buffer bound."""


class EncodeError(CodecError, ValueError):
    """A command or argument that cannot be encoded."""
