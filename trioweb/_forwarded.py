"""Behind a proxy: the client's address, scheme and host from trusted forwarding headers.

Sans-I/O: the peer's address, the connection's scheme and host and the request's headers
in, the client's view out. Only a peer in ``FORWARDED_ALLOW_IPS`` is believed. The hops
a header lists are walked from the right (the nearest proxy first) while they are
trusted; the first untrusted one is the client. X-Forwarded-* wins over RFC 7239
``Forwarded`` when a request has both (see docs/deployment.md for why). A malformed
header is ignored, as if it were absent; the work is bounded by ``MAX_HOPS``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from typing import NamedTuple

from ._strict import valid_host

__all__ = ["ClientView", "TrustedPeers", "client_view", "trusted_peers"]

#: Hops read from the right of a header; a longer chain of trusted proxies is ignored.
MAX_HOPS = 32

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """The proxies ``FORWARDED_ALLOW_IPS`` names: ``in`` tells whether an address is one."""

    def __init__(self, everyone: bool, networks: tuple[_Network, ...]) -> None:
        self.everyone = everyone
        self.networks = networks

    def __bool__(self) -> bool:
        return self.everyone or bool(self.networks)

    def __contains__(self, address: str) -> bool:
        if self.everyone:
            return True
        parsed = _ip(address)
        if parsed is None:
            return False
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(parsed in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def trusted_peers(value: str) -> TrustedPeers:
    """``FORWARDED_ALLOW_IPS`` parsed: comma-separated addresses and CIDRs, or ``*``.

    Cached by value, so each setting is parsed once however often it is read, and a
    setting changed before serving is parsed anew. Raises ``ValueError`` naming the
    entry that is neither an address nor a network.
    """
    everyone = False
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if entry == "*":
            everyone = True
        elif entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network"
                ) from None
    return TrustedPeers(everyone, tuple(networks))


class ClientView(NamedTuple):
    """The request as the client made it: its address, scheme and host."""

    remote_addr: str
    scheme: str
    host: str


class _Hop(NamedTuple):
    """What one proxy says about the node it received the request from."""

    node: str | None  # an address, or an obfuscated identifier; None: not said
    scheme: str | None
    host: str | None


def client_view(
    peer: str,
    scheme: str,
    host: str,
    getall: Callable[[str], list[str]],
    trusted: TrustedPeers,
) -> ClientView:
    """The client's view of a request from ``peer`` (``getall``: the request's headers)."""
    direct = ClientView(peer, scheme, host)
    if not trusted or peer not in trusted:
        return direct
    forwarded_for = getall("x-forwarded-for")
    protos = getall("x-forwarded-proto")
    hosts = getall("x-forwarded-host")
    if forwarded_for or protos or hosts:
        hops, more = _x_forwarded(forwarded_for, protos, hosts)
    else:
        hops, more = _forwarded(getall("forwarded"))
    # hops[0] is the nearest proxy's record. Walk while the node it names is trusted.
    remote_addr, scheme, host = direct
    for hop in hops:
        scheme, host = hop.scheme or direct.scheme, hop.host or direct.host
        if hop.node is None:  # this proxy did not say: the last address known stands
            break
        remote_addr = hop.node
        if remote_addr not in trusted:
            break
    else:
        if more:  # more trusted hops than MAX_HOPS: the client is out of sight
            return direct
    return ClientView(remote_addr, scheme, host)


def _ip(text: str) -> _Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _scheme(value: str) -> str | None:
    value = value.strip().lower()
    return value if value in ("http", "https") else None


def _host(value: str) -> str | None:
    value = value.strip()
    try:
        return value if value and valid_host(value.encode("ascii")) else None
    except UnicodeEncodeError:
        return None


# -- X-Forwarded-For, -Proto, -Host -------------------------------------------------------

# An address in X-Forwarded-For, with the port some proxies add: 192.0.2.1, 192.0.2.1:80,
# 2001:db8::1, [2001:db8::1], [2001:db8::1]:80.
_XFF_ADDRESS = re.compile(
    r"\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?|([0-9.]+)(?::\d{1,5})?|([0-9A-Fa-f:.]+)"
)


def _last(values: list[str]) -> tuple[list[str], bool]:
    """The last ``MAX_HOPS`` comma-separated items, nearest first, and whether there are
    more; the rest of the text is not read."""
    items = ", ".join(values).rsplit(",", MAX_HOPS)
    return [item.strip() for item in reversed(items[-MAX_HOPS:])], len(items) > MAX_HOPS


def _x_forwarded(
    forwarded_for: list[str], protos: list[str], hosts: list[str]
) -> tuple[list[_Hop], bool]:
    """The hops of X-Forwarded-*, nearest first, and whether there are more than
    ``MAX_HOPS``; no hop when a header is malformed.

    X-Forwarded-For lists one address per proxy. Proto and Host are usually one value,
    overwritten by the nearest proxy; when a chain appends to them too, the value at the
    client's position counts, as far as the list goes.
    """
    nodes: list[str | None] = [None]  # only Proto or Host: a hop that names no node
    more = False
    if forwarded_for:
        items, more = _last(forwarded_for)
        nodes = []
        for item in items:
            match = _XFF_ADDRESS.fullmatch(item)
            address = match and _ip(match[1] or match[2] or match[3])
            if not address:
                return [], False
            nodes.append(str(address))
    proto_list = _last(protos)[0] if protos else []
    host_list = _last(hosts)[0] if hosts else []
    hops = []
    for index, node in enumerate(nodes):
        scheme = _scheme(proto_list[min(index, len(proto_list) - 1)]) if proto_list else None
        host = _host(host_list[min(index, len(host_list) - 1)]) if host_list else None
        if (proto_list and scheme is None) or (host_list and host is None):
            return [], False
        hops.append(_Hop(node, scheme, host))
    return hops, more


# -- Forwarded (RFC 7239) -----------------------------------------------------------------

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# One forwarded-pair, then what follows it: ";" (another pair), "," (another element), or
# the end. Linear: no part can match the same text in two ways.
_PAIR = re.compile(rf'[ \t]*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*([;,]|$)')
_ESCAPE = re.compile(r"\\(.)")
# A node (RFC 7239 6): an IPv4 address, a bracketed IPv6 one, "unknown" or an
# obfuscated identifier, and an optional port (a number or obfuscated).
_NODE = re.compile(
    r"(?:([0-9.]+)|\[([0-9A-Fa-f:.]+)\]|(unknown|_[A-Za-z0-9._-]+))"
    r"(?::(?:\d{1,5}|_[A-Za-z0-9._-]+))?"
)


def _forwarded(values: list[str]) -> tuple[list[_Hop], bool]:
    """The elements of Forwarded, nearest first (the last ``MAX_HOPS``), and whether
    there are more; no element when the header is malformed."""
    text = ", ".join(values)
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PAIR.match(text, position)
        if match is None:
            return [], False
        name, value, separator = match[1].lower(), match[2], match[3]
        if value.startswith('"'):
            value = _ESCAPE.sub(r"\1", value[1:-1])
        if name in element:  # RFC 7239 4: each parameter at most once per element
            return [], False
        element[name] = value
        if separator != ";":
            elements.append(element)
            element = {}
        position = match.end()
    if element:  # ended on ";"
        return [], False
    hops = []
    for element in reversed(elements[-MAX_HOPS:]):
        node = None
        if "for" in element:
            match = _NODE.fullmatch(element["for"])
            if match is None:
                return [], False
            if match[1] or match[2]:
                address = _ip(match[1] or match[2])
                if address is None:
                    return [], False
                node = str(address)
            else:
                node = match[3]
        scheme = _scheme(element["proto"]) if "proto" in element else None
        host = _host(element["host"]) if "host" in element else None
        if ("proto" in element and scheme is None) or ("host" in element and host is None):
            return [], False
        hops.append(_Hop(node, scheme, host))
    return hops, len(elements) > MAX_HOPS
