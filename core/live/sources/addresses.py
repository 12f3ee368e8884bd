"""Camera addresses as they may be shown: passwords masked, in user-info and in parameters alike.

``rtsp://admin:s3cret@10.0.0.7/live?pwd=x`` is shown as ``rtsp://admin:***@10.0.0.7/live?pwd=***``
everywhere a person or a log could see it: status lines, errors, the console's settings.  Nothing
here decodes, re-encodes or raises: a malformed address is masked as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MASK", "display_spec", "mask_text"]

MASK = "***"
# Query (or path) parameters whose value is a credential: exact names, and names containing these.
_SECRET_PARAMS = frozenset({"pwd", "pw", "pass", "passwd", "password", "token", "key", "apikey", "api_key",
                            "secret", "auth", "sig", "signature", "access_token", "auth_token"})
_SECRET_PARTS = ("pass", "pwd", "token", "secret", "apikey", "api_key")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_PARAM = re.compile(r"(?P<lead>[?&;/])(?P<key>[^=&;/?#]+)=(?P<value>[^&;/?#]*)")


def _is_secret_param(key: str) -> bool:
    key = key.lower()
    return key in _SECRET_PARAMS or any(part in key for part in _SECRET_PARTS)


@dataclass(frozen=True)
class _Address:
    """A URL split by hand, as typed: ``scheme://`` + ``user[:password]@`` + ``host`` + the rest.

    Not :func:`urllib.parse.urlsplit`: that raises on some malformed addresses (a bad port), lower-cases
    the host and would have to be reassembled; here nothing is decoded or re-encoded.
    """

    scheme: str  # with "://"
    user: str | None  # None: no user-info at all
    password: str | None  # None: no password (``user@host``)
    host: str
    rest: str  # path, query and fragment

    @classmethod
    def parse(cls, spec: str) -> _Address | None:
        scheme, sep, after = spec.partition("://")
        if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
            return None
        cut = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
        netloc, rest = after[:cut], after[cut:]
        userinfo, at, host = netloc.rpartition("@")
        if not at:
            return cls(scheme + sep, None, None, host, rest)
        user, colon, password = userinfo.partition(":")
        return cls(scheme + sep, user, password if colon else None, host, rest)

    def text(self, password: str | None) -> str:
        if self.user is None:
            userinfo = ""
        else:
            userinfo = f"{self.user}@" if password is None else f"{self.user}:{password}@"
        return f"{self.scheme}{userinfo}{self.host}{self.rest}"

    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for m in _PARAM.finditer(self.rest):
            out.setdefault(m["key"], m["value"])
        return out


def _mask_params(rest: str) -> str:
    return _PARAM.sub(lambda m: f"{m['lead']}{m['key']}={MASK}" if _is_secret_param(m["key"]) and m["value"]
                      else m.group(0), rest)


def display_spec(spec: str) -> str:
    """The spec as it may be shown: passwords masked.

    Masks the user-info password (``rtsp://admin:***@10.0.0.7/…``) and the value of password-like
    parameters in the path or query (``pwd``, ``password``, ``pass``, ``token``, ``key``, ``secret``,
    ``auth``, ``sig`` and names containing ``pass``, ``pwd``, ``token`` …: ``?user=admin&pwd=***``).
    Files, folders, webcams and ``demo`` are returned unchanged.  (It masks what
    the sources' status lines show, through :func:`core.live.sources.redact_url`.)
    """
    address = _Address.parse(spec)
    if address is None:
        return spec
    password = MASK if address.password is not None else None
    return _Address(address.scheme, address.user, password, address.host, _mask_params(address.rest)).text(password)


def mask_text(text: str) -> str:
    """``text`` (a status line, an error message) with every camera address in it masked as by
    :func:`display_spec` — the sources mask user-info passwords only, not ``?pwd=…``."""
    return _URL.sub(lambda m: display_spec(m.group(0)), text)
