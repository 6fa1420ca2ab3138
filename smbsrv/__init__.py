"""smbsrv: a standalone SMB2/3 file server."""
