"""The server's network interfaces as FSCTL_QUERY_NETWORK_INTERFACE_INFO reports them ([MS-SMB2] 2.2.32.5).

NETWORK_INTERFACE_INFO, 152 bytes each: Next(4) (offset of the next entry, 0 in the last), IfIndex(4),
Capability(4) (RSS 0x1, RDMA 0x2: neither here), Reserved(4), LinkSpeed(8) (bits per second), then a 128-byte
SOCKADDR_STORAGE: Family(2) (0x0002 InterNetwork, 0x0017 InterNetworkV6) and, for IPv4, Port(2) (0),
IPv4Address(4) in network order and Reserved(8); for IPv6, Port(2), FlowInfo(4), IPv6Address(16), ScopeId(4).
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from dataclasses import dataclass

_ENTRY = struct.Struct("<IIIIQ")
_ENTRY_SIZE = _ENTRY.size + 128
_FAMILY_INET = 0x0002
_FAMILY_INET6 = 0x0017
_SIOCGIFADDR = 0x8915
# What a link whose speed the kernel does not say (loopback, virtual devices) is announced with; Samba's
# default for an interface without a configured speed is 1 Gbit/s too. A zero speed makes clients skip it.
_DEFAULT_SPEED_BPS = 1_000_000_000


@dataclass(frozen=True)
class Interface:
    if_index: int
    address: str  # IPv4 or IPv6 text form
    link_speed_bps: int


def _link_speed(name: str) -> int:
    try:
        with open(f"/sys/class/net/{name}/speed") as handle:
            mbps = int(handle.read().strip())
    except (OSError, ValueError):
        return _DEFAULT_SPEED_BPS
    return mbps * 1_000_000 if mbps > 0 else _DEFAULT_SPEED_BPS


def _host_addresses(family: int) -> list[Interface]:
    """Every address of `family` on the host's interfaces (IPv4 by SIOCGIFADDR, IPv6 from /proc)."""
    found: list[Interface] = []
    if family == socket.AF_INET:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for index, name in socket.if_nameindex():
                try:
                    answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
                except OSError:
                    continue  # no IPv4 address on this interface
                found.append(Interface(index, socket.inet_ntoa(answer[20:24]), _link_speed(name)))
        return found
    try:
        with open("/proc/net/if_inet6") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        address = str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
        found.append(Interface(int(fields[1], 16), address, _link_speed(fields[5])))
    return found


def _index_of(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    for interface in _host_addresses(family):
        if interface.address == address:
            return interface.if_index
    return 0xFFFFFFFF  # unknown, as Samba says it


def advertised(listen: tuple[str, ...], local_address: tuple[str, int] | None) -> list[Interface]:
    interfaces: list[Interface] = []
    for host in listen:
        if host in ("", "0.0.0.0", "::"):
            family = socket.AF_INET6 if host == "::" else socket.AF_INET
            interfaces.extend(_host_addresses(family))
        else:
            interfaces.append(Interface(_index_of(host), host, _DEFAULT_SPEED_BPS))
    if not interfaces and local_address is not None:
        interfaces.append(Interface(_index_of(local_address[0]), local_address[0], _DEFAULT_SPEED_BPS))
    unique = {interface.address: interface for interface in interfaces}
    return list(unique.values())


def encode(interfaces: list[Interface]) -> bytes:
    out = bytearray()
    for position, interface in enumerate(interfaces):
        next_offset = _ENTRY_SIZE if position < len(interfaces) - 1 else 0
        address = ipaddress.ip_address(interface.address.split("%")[0])
        if address.version == 4:
            sockaddr = struct.pack("<HH", _FAMILY_INET, 0) + address.packed + bytes(8)
        else:
            sockaddr = struct.pack("<HHI", _FAMILY_INET6, 0, 0) + address.packed + struct.pack("<I", 0)
        out += _ENTRY.pack(next_offset, interface.if_index, 0, 0, interface.link_speed_bps)
        out += sockaddr.ljust(128, b"\x00")
    return bytes(out)
