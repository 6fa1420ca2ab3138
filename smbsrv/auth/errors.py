"""The one way a logon fails: AuthError, which SESSION_SETUP answers with STATUS_LOGON_FAILURE ([MS-SMB2] 3.3.5.5.3)."""

from smbsrv.errors import SmbError
from smbsrv.wire.status import NtStatus


class AuthError(SmbError):
    """A refused or malformed authentication exchange.

    `reason` is for the server log only (never sent, never containing secrets); the client just sees
    STATUS_LOGON_FAILURE, as Windows and Samba answer a wrong password, an unknown user or a bad token alike.
    """

    def __init__(self, reason: str, status: NtStatus = NtStatus.STATUS_LOGON_FAILURE) -> None:
        super().__init__(status)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} ({self.status.name})"
