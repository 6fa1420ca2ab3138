"""TREE_CONNECT and TREE_DISCONNECT ([MS-SMB2] 3.3.5.7, 3.3.5.8)."""

from __future__ import annotations

from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import SmbError
from smbsrv.protocol.objects import TreeConnect
from smbsrv.wire import tree_connect as wire
from smbsrv.wire.constants import (
    FILE_ALL_ACCESS,
    FILE_GENERIC_EXECUTE,
    FILE_GENERIC_READ,
    SMB2_SHARE_TYPE_DISK,
    SMB2_SHARE_TYPE_PIPE,
    SMB2_SHAREFLAG_ENCRYPT_DATA,
)
from smbsrv.wire.status import NtStatus

_IPC_SHARE = "ipc$"
_READ_ONLY_ACCESS = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE


def handle(ctx: RequestContext, request: wire.TreeConnectRequest) -> bytes:
    session = ctx.session
    assert session is not None
    server = ctx.connection.server
    share_name = _share_name(request.path)
    share_flags = 0
    if len(session.tree_connects) >= server.config.max_tree_connects_per_session:
        raise SmbError(NtStatus.STATUS_INSUFFICIENT_RESOURCES)
    if share_name.lower() == _IPC_SHARE:
        tree = TreeConnect(tree_id=0, session=session, share=None, share_root=None,  # type: ignore[arg-type]
                           maximal_access=FILE_ALL_ACCESS, is_ipc=True)
        share_type = SMB2_SHARE_TYPE_PIPE
    else:
        share = server.shares.get(share_name.lower())
        if share is None:
            raise SmbError(NtStatus.STATUS_BAD_NETWORK_NAME)
        if (session.is_guest or session.is_anonymous) and not share.guest_ok:
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        if share.valid_users and not (session.user is not None and session.user.name.lower() in {
                name.lower() for name in share.valid_users}):
            raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
        try:
            root = server.share_root(share)
        except OSError:
            ctx.connection.log.error("share %s: cannot open %s", share.name, share.path)
            raise SmbError(NtStatus.STATUS_BAD_NETWORK_NAME) from None
        access = _READ_ONLY_ACCESS if share.read_only else FILE_ALL_ACCESS
        tree = TreeConnect(tree_id=0, session=session, share=share, share_root=root, maximal_access=access,
                           read_only=share.read_only, reparse_store=server.reparse_store)
        share_type = SMB2_SHARE_TYPE_DISK
        if (share.encryption or server.config.encryption) == "required":
            if session.cipher is None:
                # A client that cannot encrypt cannot use this share ([MS-SMB2] 3.3.5.7).
                raise SmbError(NtStatus.STATUS_ACCESS_DENIED)
            tree.encrypt_data = True
            share_flags |= SMB2_SHAREFLAG_ENCRYPT_DATA
    tree.tree_id = session.next_tree_id
    session.next_tree_id += 1
    session.tree_connects[tree.tree_id] = tree
    ctx.header.tree_id = tree.tree_id
    ctx.tree = tree
    ctx.connection.log.info("session %x: tree %d -> %s", session.session_id, tree.tree_id, share_name)
    return wire.encode_response(share_type, share_flags, 0, tree.maximal_access)


def _share_name(path: str) -> str:
    """`\\\\server\\share` -> `share`. The server part is not checked: clients use any of our names or
    addresses."""
    if not path.startswith("\\\\"):
        raise SmbError(NtStatus.STATUS_BAD_NETWORK_NAME)
    parts = path[2:].split("\\")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise SmbError(NtStatus.STATUS_BAD_NETWORK_NAME)
    return parts[1]


def handle_disconnect(ctx: RequestContext, request: None) -> bytes:
    session, tree = ctx.session, ctx.tree
    assert session is not None and tree is not None
    ctx.connection.server.end_tree_connect(session, tree)
    return wire.TREE_DISCONNECT_RESPONSE
