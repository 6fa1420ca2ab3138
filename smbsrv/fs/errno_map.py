"""The one table that turns a Linux errno into an NTSTATUS ([MS-ERREF] 2.3).

Every failing system call in smbsrv.fs ends here, so a client sees the same status for the same cause whatever
the command. The choices follow Samba's `unix_dos_nt_errmap` (source3/lib/errmap_unix.c) unless a line says
otherwise. Context-specific answers (a missing *intermediate* directory is STATUS_OBJECT_PATH_NOT_FOUND, not
STATUS_OBJECT_NAME_NOT_FOUND) are decided by the resolver before it gets here.
"""

import errno
from typing import NoReturn

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus


def _status_or(name: str, fallback: NtStatus) -> NtStatus:
    # A few statuses are not in smbsrv.wire.status yet (asked for in the fs report); use the real one as soon as
    # it is added, without another edit here.
    return NtStatus.__members__.get(name, fallback)


_ERRNO_TO_STATUS: dict[int, NtStatus] = {
    errno.EPERM: NtStatus.STATUS_ACCESS_DENIED,
    errno.EACCES: NtStatus.STATUS_ACCESS_DENIED,
    errno.ENOENT: NtStatus.STATUS_OBJECT_NAME_NOT_FOUND,
    errno.ENOTDIR: NtStatus.STATUS_NOT_A_DIRECTORY,
    errno.EISDIR: NtStatus.STATUS_FILE_IS_A_DIRECTORY,
    errno.EEXIST: NtStatus.STATUS_OBJECT_NAME_COLLISION,
    errno.ENOTEMPTY: NtStatus.STATUS_DIRECTORY_NOT_EMPTY,
    # Samba: "Windows apps need this, not NT_STATUS_QUOTA_EXCEEDED" for EDQUOT; EFBIG likewise means "no room".
    errno.ENOSPC: NtStatus.STATUS_DISK_FULL,
    errno.EDQUOT: NtStatus.STATUS_DISK_FULL,
    errno.EFBIG: NtStatus.STATUS_DISK_FULL,
    # Samba answers ACCESS_DENIED; MEDIA_WRITE_PROTECTED is what Windows gives for read-only media and cifs.ko
    # maps it back to EROFS, so a Linux client sees the errno the server saw.
    errno.EROFS: NtStatus.STATUS_MEDIA_WRITE_PROTECTED,
    # A component longer than NAME_MAX: Windows/[MS-FSCC] 2.1.5.2 and Samba both say OBJECT_NAME_INVALID.
    errno.ENAMETOOLONG: NtStatus.STATUS_OBJECT_NAME_INVALID,
    # Only reachable when a symlink is swapped in after resolution and O_NOFOLLOW refuses it; Samba's mapping.
    errno.ELOOP: NtStatus.STATUS_OBJECT_PATH_NOT_FOUND,
    errno.EXDEV: NtStatus.STATUS_NOT_SAME_DEVICE,
    errno.EMLINK: NtStatus.STATUS_TOO_MANY_LINKS,
    errno.EBADF: NtStatus.STATUS_INVALID_HANDLE,
    errno.EINVAL: NtStatus.STATUS_INVALID_PARAMETER,
    errno.ENOMEM: NtStatus.STATUS_NO_MEMORY,
    errno.ENOBUFS: NtStatus.STATUS_INSUFFICIENT_RESOURCES,
    errno.EMFILE: _status_or("STATUS_TOO_MANY_OPENED_FILES", NtStatus.STATUS_INSUFFICIENT_RESOURCES),
    errno.ENFILE: _status_or("STATUS_TOO_MANY_OPENED_FILES", NtStatus.STATUS_INSUFFICIENT_RESOURCES),
    errno.EOPNOTSUPP: NtStatus.STATUS_NOT_SUPPORTED,  # == ENOTSUP on Linux
    errno.ENOSYS: NtStatus.STATUS_NOT_SUPPORTED,
    # ENODATA is ENOATTR on Linux: a missing xattr (Samba: NT_STATUS_NOT_FOUND).
    errno.ENODATA: NtStatus.STATUS_NOT_FOUND,
    errno.E2BIG: NtStatus.STATUS_EA_TOO_LARGE,
    # Writing a running executable: Windows reports the equivalent as a sharing violation.
    errno.ETXTBSY: NtStatus.STATUS_SHARING_VIOLATION,
    # Data opens use O_NONBLOCK; EAGAIN then means another holder's kernel lease (Samba, knfsd) is in the way.
    errno.EAGAIN: NtStatus.STATUS_SHARING_VIOLATION,
    errno.ENXIO: NtStatus.STATUS_NO_SUCH_DEVICE,
    errno.ENODEV: NtStatus.STATUS_NO_SUCH_DEVICE,
    errno.ESTALE: NtStatus.STATUS_FILE_INVALID,
    errno.ECANCELED: NtStatus.STATUS_CANCELLED,
    errno.EIO: _status_or("STATUS_IO_DEVICE_ERROR", NtStatus.STATUS_INTERNAL_ERROR),
}

# Samba's default for an errno it has no entry for.
_DEFAULT_STATUS = NtStatus.STATUS_ACCESS_DENIED


def status_for_errno(e: int) -> NtStatus:
    """The NTSTATUS a client gets for errno `e`."""
    return _ERRNO_TO_STATUS.get(e, _DEFAULT_STATUS)


def raise_for_oserror(exc: OSError) -> NoReturn:
    """Re-raise an OSError from a file system call as the SmbError a client should see."""
    raise SmbError(status_for_errno(exc.errno or 0)) from exc
