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

    def copy(self) -> "FileInfo":
        """A copy a caller may change (the shown LastWriteTime, EaSize) while the original is kept for reuse
        (fs/handle.py FileHandle.info). Positional: several times cheaper than dataclasses.replace."""
        return FileInfo(self.creation_time, self.last_access_time, self.last_write_time, self.change_time,
                        self.end_of_file, self.allocation_size, self.attributes, self.index_number,
                        self.number_of_links, self.reparse_tag, self.ea_size, self.mode, self.uid, self.gid,
                        self.dev, self.rdev)
