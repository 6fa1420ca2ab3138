"""What the server knows about one file, in SMB terms: the input of every info-class encoder.

The backend fills it from one fstatat() plus the DOS-attribute xattr; the encoders in smbsrv.fscc turn it into
bytes. Times are NT FILETIME values (100 ns units since 1601-01-01 UTC).
"""

from dataclasses import dataclass


@dataclass(slots=True)
class FileInfo:
    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    end_of_file: int
    allocation_size: int
    attributes: int  # FILE_ATTRIBUTE_* ([MS-FSCC] 2.6), includes DIRECTORY and REPARSE_POINT where they apply
    index_number: int  # st_ino: FileId / IndexNumber / InodeNumber
    number_of_links: int
    reparse_tag: int  # IO_REPARSE_TAG_* or 0
    ea_size: int  # size of the EA list in FileFullEaInformation form, 0 without EAs
    mode: int  # st_mode, type bits included
    uid: int
    gid: int
    dev: int  # st_dev
    rdev: int  # st_rdev

    @property
    def is_directory(self) -> bool:
        return self.attributes & 0x10 != 0
