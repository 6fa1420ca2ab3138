"""The bodies that carry nothing but a StructureSize: ECHO and CANCEL ([MS-SMB2] 2.2.28, 2.2.29, 2.2.30)."""

import struct

from smbsrv.wire.buffer import check_structure_size

ECHO_RESPONSE = struct.pack("<HH", 4, 0)


def decode_echo(element: memoryview) -> None:
    check_structure_size(element, 4)
