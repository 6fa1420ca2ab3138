"""Object IDs ([MS-FSCC] 2.1.3 FILE_OBJECTID_BUFFER; FSCTL_CREATE_OR_GET_OBJECT_ID 2.3.7/2.3.8 and
FSCTL_GET_OBJECT_ID 2.3.25/2.3.26; [MS-FSA] 2.1.5.10.1 and 2.1.5.10.13).

A file's ObjectId is derived, never stored: its inode number and device, as Samba 4.17 derives it
(vfs_default.c, push_file_id_16), so it is the same for every open and every connection, survives renames and
restarts, and costs no write (a read-only handle or share can ask). Every file therefore has one from its
creation on, and FSCTL_GET_OBJECT_ID answers it too instead of STATUS_OBJECTID_NOT_FOUND. BirthVolumeId is a
fixed id of the share, the volume's FileFsObjectIdInformation ObjectId too (Samba takes an MD4 of the share name
for both; a hash of it here, commands/volume.py), BirthObjectId the ObjectId,
DomainId zero ([MS-FSA] 2.1.5.10.1 sets it empty).
"""

from __future__ import annotations

import os
import struct

from smbsrv.commands.volume import volume_id
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import Open
from smbsrv.wire import ioctl as wire
from smbsrv.wire.status import NtStatus

FSCTL_GET_OBJECT_ID = 0x0009009C
FSCTL_CREATE_OR_GET_OBJECT_ID = 0x000900C0
_ID = struct.Struct("<QQ")  # inode, device
OBJECTID_BUFFER_SIZE = 64


def object_id(st: os.stat_result) -> bytes:
    return _ID.pack(st.st_ino, st.st_dev)


def get_object_id(ctx: RequestContext, open_: Open, request: wire.IoctlRequest) -> bytes:
    """Both controls answer the same FILE_OBJECTID_BUFFER; no access right is needed ([MS-FSA] names none).
    An output buffer under 64 bytes is STATUS_INVALID_PARAMETER ([MS-FSA] 2.1.5.10.1/2.1.5.10.13; Samba
    instead cuts the buffer)."""
    if request.max_output_response < OBJECTID_BUFFER_SIZE:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    assert ctx.tree is not None
    own = object_id(open_.handle.stat())
    return own + volume_id(ctx.tree.share.name) + own + bytes(16)


CONTROLS = {
    FSCTL_GET_OBJECT_ID: get_object_id,
    FSCTL_CREATE_OR_GET_OBJECT_ID: get_object_id,
}
