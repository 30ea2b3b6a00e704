"""Sans-IO codecs of the station devices' wire protocols.

Bytes in, typed frames out; commands in, bytes out. Nothing here opens a port, sleeps,
reads a clock or logs: that keeps every codec testable with hypothesis and reusable under
any transport (see ``docs/architecture.md``).
"""
