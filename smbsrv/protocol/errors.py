"""The protocol core's names for the two failure kinds; they are defined in smbsrv.errors so that codecs and
the file system layer need not import protocol/."""

from smbsrv.errors import ProtocolViolation, SmbError

__all__ = ["ProtocolViolation", "SmbError"]
