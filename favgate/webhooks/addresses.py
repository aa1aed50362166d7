"""Where a webhook may be sent: http(s) URLs whose host resolves to public addresses only.

A gateway that POSTs to any URL a tenant names would let that tenant reach what only the
gateway can (a cloud's metadata service on 169.254.169.254, a database on 10.0.0.5, the
gateway's own /metrics on 127.0.0.1). So a URL's host is resolved, and refused if any of
its addresses is loopback, private, link-local, shared, reserved or multicast, unless
``FAVGATE_WEBHOOK_ALLOW_PRIVATE`` is set (development, tests).

The check runs when an endpoint is added, and again before every delivery, whose
connection then goes to the very address checked (``Destination``): a host that resolved
to a public address when it was added and to 127.0.0.1 since (DNS rebinding) is refused
at delivery, not connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

from favgate.errors import InvalidArgument

_SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Destination:
    """A URL with its host replaced by the address checked, and the host it named."""

    url: httpx.URL
    hostname: str
    # The Host header the receiver expects, the port included when the URL gave one.
    host_header: str

    @property
    def headers(self) -> dict[str, str]:
        return {"host": self.host_header}

    @property
    def extensions(self) -> dict[str, str]:
        """TLS is negotiated and checked for the host named, not for the address."""
        return {"sni_hostname": self.hostname}


def parse(url: str) -> httpx.URL:
    """``url`` if it is an absolute http(s) URL without credentials; else InvalidArgument."""
    try:
        parsed = httpx.URL(url)
        parsed.host  # noqa: B018 decoded lazily: a bad IDNA label ("xn--") fails here
    except (httpx.InvalidURL, ValueError):
        raise InvalidArgument("url", "not a valid URL") from None
    if parsed.scheme not in _SCHEMES or not parsed.host:
        raise InvalidArgument("url", "must be an http or https URL")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise InvalidArgument("url", "not a valid URL")
    if parsed.userinfo:
        raise InvalidArgument("url", "must not contain credentials")
    return parsed


async def resolve(url: str, allow_private: bool, attempt: int = 0) -> Destination:
    """Where to send a delivery for ``url``, once every address its host resolves to has
    been found public (or ``allow_private``); InvalidArgument if not. Successive attempts
    take its addresses in turn: one unreachable address (IPv6, say) does not fail all."""
    parsed = parse(url)
    port = parsed.port or _SCHEMES[parsed.scheme]
    addresses = await _addresses(parsed.host, port)
    refused = [address for address in addresses if not _public(address)]
    if refused and not allow_private:
        raise InvalidArgument("url", f"its host resolves to a non-public address ({refused[0]})")
    name = f"[{parsed.host}]" if ":" in parsed.host else parsed.host  # IPv6 keeps brackets
    host_header = name if parsed.port is None else f"{name}:{parsed.port}"
    address = addresses[attempt % len(addresses)]
    return Destination(parsed.copy_with(host=str(address)), parsed.host, host_header)


async def _addresses(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # socket.gaierror is an OSError; UnicodeError a ValueError
        raise InvalidArgument("url", "its host does not resolve") from None
    # The scope of a link-local IPv6 address ("fe80::1%eth0") is not part of the address.
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise InvalidArgument("url", "its host does not resolve")
    return list(dict.fromkeys(found))


def _public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
