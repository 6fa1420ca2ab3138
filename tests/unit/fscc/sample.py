"""FileInfo samples shared by the fscc tests."""

import stat

from smbsrv.fs.fileinfo import FileInfo

# Distinct, recognisable values so a field written at the wrong offset shows up.
CREATION = 0x01D0_0000_0000_0001
ACCESS = 0x01D0_0000_0000_0002
WRITE = 0x01D0_0000_0000_0003
CHANGE = 0x01D0_0000_0000_0004


def make_info(**overrides: int) -> FileInfo:
    values: dict[str, int] = {
        "creation_time": CREATION,
        "last_access_time": ACCESS,
        "last_write_time": WRITE,
        "change_time": CHANGE,
        "end_of_file": 5000,
        "allocation_size": 8192,
        "attributes": 0x20,
        "index_number": 0x1122334455667788,
        "number_of_links": 3,
        "reparse_tag": 0,
        "ea_size": 0x44,
        "mode": stat.S_IFREG | 0o640,
        "uid": 1000,
        "gid": 100,
        "dev": 0x803,
        "rdev": 0,
    }
    values.update(overrides)
    return FileInfo(**values)


def u8(data: bytes, offset: int) -> int:
    return data[offset]


def u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def u64(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 8], "little")
