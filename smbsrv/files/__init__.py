"""Per-file state: opens, delete-pending, byte-range locks, oplocks and leases (the object store of [MS-FSA])."""

from smbsrv.files.table import CloseEffects, FileState, FileTable

__all__ = ["CloseEffects", "FileState", "FileTable"]
