"""ACCESS_SYSTEM_SECURITY in a CREATE ([MS-DTYP] 2.4.3): only a holder of SeSecurityPrivilege gets it, and the
test account holds none, so any request carrying it is STATUS_PRIVILEGE_NOT_HELD, as Samba 4.17 answers
(open_file_ntcreate) and Windows' SeAccessCheck does. SYNCHRONIZE alone is granted, as by Samba 4.17 and
Windows 7 (smbtorture smb2.create.gentest's access sweep, 0x0de0fe00 on those servers)."""

from __future__ import annotations

import struct

from tests import builders as b
from tests.conftest import SmbServer

ACCESS_SYSTEM_SECURITY = 0x01000000
STATUS_PRIVILEGE_NOT_HELD = 0xC0000061


def test_system_security_needs_the_privilege(smb_server: SmbServer) -> None:
    with b.connect(smb_server.host, smb_server.port, smb_server.user, smb_server.password) as client:
        client.close_file(client.open("sacl.txt", desired_access=b.GENERIC_WRITE, disposition=b.FILE_CREATE))
        for access in (ACCESS_SYSTEM_SECURITY, ACCESS_SYSTEM_SECURITY | b.GENERIC_READ,
                       ACCESS_SYSTEM_SECURITY | b.MAXIMUM_ALLOWED):
            for disposition in (b.FILE_OPEN, b.FILE_OPEN_IF):
                response = client.create("sacl.txt", desired_access=access, disposition=disposition)
                assert response.status == STATUS_PRIVILEGE_NOT_HELD, (hex(access), b.status_name(response.status))
        # Nothing is created on the way to the refusal.
        response = client.create("new.txt", desired_access=ACCESS_SYSTEM_SECURITY, disposition=b.FILE_CREATE)
        assert response.status == STATUS_PRIVILEGE_NOT_HELD
        response = client.create("new.txt", desired_access=b.FILE_READ_ATTRIBUTES)
        assert response.status == b.STATUS_OBJECT_NAME_NOT_FOUND
        response = client.create("sacl.txt", desired_access=b.SYNCHRONIZE, disposition=b.FILE_OPEN)
        assert response.status == b.STATUS_SUCCESS, b.status_name(response.status)
        granted = b.create_file_id(response.body)
        # Granted access shows in FileAccessInformation ([MS-FSCC] 2.4.1, class 8): exactly SYNCHRONIZE.
        query = client.query_info(granted, b.SMB2_0_INFO_FILE, 8)
        assert query.status == b.STATUS_SUCCESS
        assert struct.unpack("<I", b.output_buffer(query))[0] == b.SYNCHRONIZE
        assert client.close_file(granted) == b.STATUS_SUCCESS
