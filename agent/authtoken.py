"""The one check of the local token shared by the station API and the diagnostics page.

Both servers listen on 127.0.0.1 and accept the same token (``STATE_DIR/api.token``); a
request proves it knows it with ``Authorization: Bearer <token>`` (the diagnostics page also
takes it from its login cookie or login link). Every comparison goes through
:func:`token_matches`, a constant-time compare, so no caller can slip back to ``==`` and leak
the token's prefix through response timing.
"""

from __future__ import annotations

import hmac

BEARER = "Bearer "


def token_matches(given: str, token: str) -> bool:
    """True when ``given`` equals ``token``, compared in constant time; an empty given never matches."""
    if not given or not token:
        return False
    # Header values arrive decoded as Latin-1 and may hold any code point; compare bytes so
    # hmac.compare_digest never raises on non-ASCII input.
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


def bearer_matches(authorization: str | None, token: str) -> bool:
    """True when an ``Authorization`` header value is ``Bearer <token>`` (spaces around it ignored)."""
    if not authorization or not authorization.startswith(BEARER):
        return False
    return token_matches(authorization[len(BEARER):].strip(), token)
