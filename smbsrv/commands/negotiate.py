"""NEGOTIATE ([MS-SMB2] 3.3.5.3 SMB1 upgrade, 3.3.5.4 SMB2 NEGOTIATE)."""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from smbsrv.crypto import preauth
from smbsrv.fscc.times import filetime_now
from smbsrv.protocol.context import RequestContext
from smbsrv.protocol.errors import ProtocolViolation, SmbError
from smbsrv.wire import negotiate as wire
from smbsrv.wire.constants import (
    POSIX_EXTENSIONS_GUID,
    SMB2_ENCRYPTION_AES128_CCM,
    SMB2_ENCRYPTION_AES128_GCM,
    SMB2_ENCRYPTION_AES256_CCM,
    SMB2_ENCRYPTION_AES256_GCM,
    SMB2_ENCRYPTION_CAPABILITIES,
    SMB2_FLAGS_SERVER_TO_REDIR,
    SMB2_GLOBAL_CAP_DIRECTORY_LEASING,
    SMB2_GLOBAL_CAP_ENCRYPTION,
    SMB2_GLOBAL_CAP_LARGE_MTU,
    SMB2_GLOBAL_CAP_LEASING,
    SMB2_GLOBAL_CAP_MULTI_CHANNEL,
    SMB2_NEGOTIATE_SIGNING_ENABLED,
    SMB2_NEGOTIATE_SIGNING_REQUIRED,
    SMB2_POSIX_EXTENSIONS_AVAILABLE,
    SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
    SMB2_PREAUTH_INTEGRITY_SHA512,
    SMB2_SIGNING_AES_CMAC,
    SMB2_SIGNING_AES_GMAC,
    SMB2_SIGNING_CAPABILITIES,
    SMB2_SIGNING_HMAC_SHA256,
    Command,
    Dialect,
)
from smbsrv.wire.header import HEADER_SIZE, encode_response_header
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.protocol.connection import Connection

SUPPORTED_DIALECTS = (Dialect.SMB3_1_1, Dialect.SMB3_0_2, Dialect.SMB3_0, Dialect.SMB2_1, Dialect.SMB2_0_2)
# Preference when the client offers several signing algorithms: GMAC is the cheapest per byte.
_SIGNING_PREFERENCE = (SMB2_SIGNING_AES_GMAC, SMB2_SIGNING_AES_CMAC, SMB2_SIGNING_HMAC_SHA256)
# GCM before CCM (faster with AES-NI), 128-bit before 256-bit, as Windows and Samba order them.
_CIPHER_PREFERENCE = (SMB2_ENCRYPTION_AES128_GCM, SMB2_ENCRYPTION_AES128_CCM, SMB2_ENCRYPTION_AES256_GCM,
                      SMB2_ENCRYPTION_AES256_CCM)
_U16 = struct.Struct("<H")
_SMB2_0_2_MAX_SIZE = 65536


def _u16_list(data: bytes, count_offset: int, list_offset: int) -> list[int]:
    if len(data) < count_offset + 2:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    (count,) = _U16.unpack_from(data, count_offset)
    if count == 0 or len(data) < list_offset + 2 * count:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return [_U16.unpack_from(data, list_offset + 2 * i)[0] for i in range(count)]


def handle(ctx: RequestContext) -> bytes:
    connection = ctx.connection
    request = wire.decode_request(ctx.element)
    dialect = next((d for d in SUPPORTED_DIALECTS if d in request.dialects), None)
    if dialect is None:
        raise SmbError(NtStatus.STATUS_NOT_SUPPORTED)
    config = connection.server.config
    response_contexts: list[wire.NegotiateContext] = []
    if dialect == Dialect.SMB3_1_1:
        response_contexts = _negotiate_contexts(connection, request)
        connection.preauth_hash = preauth.update(preauth.PREAUTH_INITIAL, ctx.element)
    connection.negotiated = True
    connection.dialect = dialect
    connection.client_guid = request.client_guid
    connection.client_capabilities = request.capabilities
    connection.client_security_mode = request.security_mode
    connection.client_dialects = request.dialects
    connection.supports_multi_credit = dialect != Dialect.SMB2_0_2
    security_mode = SMB2_NEGOTIATE_SIGNING_ENABLED
    if config.signing == "required":
        security_mode |= SMB2_NEGOTIATE_SIGNING_REQUIRED
    # Leases from 2.1 on ([MS-SMB2] 3.3.5.4); 2.0.2 clients get oplocks only.
    capabilities = SMB2_GLOBAL_CAP_LARGE_MTU | SMB2_GLOBAL_CAP_LEASING if dialect != Dialect.SMB2_0_2 else 0
    if (dialect >= Dialect.SMB3_0 and request.capabilities & SMB2_GLOBAL_CAP_DIRECTORY_LEASING
            and any(share.oplocks and share.directory_leases for share in config.shares)):
        # Directory leases on 3.x ([MS-SMB2] 3.3.5.4), when a share grants them (shares with directory_leases
        # off answer a directory's lease request with none); cifs.ko caches directory handles only with it.
        # Only to clients that announce it themselves (cifs.ko, Windows and smbtorture do), as for multichannel
        # below: impacket 0.12 does not, and its create() fails on every path once the server announces it.
        capabilities |= SMB2_GLOBAL_CAP_DIRECTORY_LEASING
    if (dialect in (Dialect.SMB3_0, Dialect.SMB3_0_2) and request.capabilities & SMB2_GLOBAL_CAP_ENCRYPTION
            and config.encryption != "off"):
        # 3.0 and 3.0.2 negotiate encryption by capability, always AES-128-CCM ([MS-SMB2] 3.3.5.4).
        capabilities |= SMB2_GLOBAL_CAP_ENCRYPTION
        connection.cipher_id = SMB2_ENCRYPTION_AES128_CCM
    if (dialect >= Dialect.SMB3_0 and config.multi_channel
            and request.capabilities & SMB2_GLOBAL_CAP_MULTI_CHANNEL):
        # [MS-SMB2] 3.3.5.4: IsMultiChannelCapable on 3.x; like Samba, only to clients that ask for it.
        capabilities |= SMB2_GLOBAL_CAP_MULTI_CHANNEL
    connection.server_security_mode = security_mode
    connection.server_capabilities = capabilities
    max_size = _SMB2_0_2_MAX_SIZE if dialect == Dialect.SMB2_0_2 else config.max_io_size
    response = wire.NegotiateResponse(
        security_mode=security_mode, dialect_revision=dialect, server_guid=connection.server.server_guid,
        capabilities=capabilities, max_transact_size=max_size, max_read_size=max_size,
        max_write_size=min(max_size, config.write_size_limit),
        system_time=filetime_now(), server_start_time=0,
        security_buffer=connection.server.authenticator.negotiate_token(), contexts=response_contexts)
    connection.log.info("negotiated dialect %04x with %s", dialect, connection.peer)
    return response.encode()


def _negotiate_contexts(connection: Connection, request: wire.NegotiateRequest) -> list[wire.NegotiateContext]:
    """[MS-SMB2] 3.3.5.4: the 3.1.1 contexts. Preauth is mandatory; the others are answered when offered."""
    seen: set[int] = set()
    answers: list[wire.NegotiateContext] = []
    preauth_ok = False
    for context in request.contexts:
        if context.context_type in seen and context.context_type in (
                SMB2_PREAUTH_INTEGRITY_CAPABILITIES, SMB2_ENCRYPTION_CAPABILITIES, SMB2_SIGNING_CAPABILITIES):
            raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
        seen.add(context.context_type)
        data = context.data
        if context.context_type == SMB2_PREAUTH_INTEGRITY_CAPABILITIES:
            algorithms = _u16_list(data, 0, 4)
            if len(data) < 4 + 2 * len(algorithms) + _U16.unpack_from(data, 2)[0]:
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            if SMB2_PREAUTH_INTEGRITY_SHA512 not in algorithms:
                raise SmbError(NtStatus.STATUS_SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP)
            preauth_ok = True
            salt = os.urandom(32)
            answers.append(wire.NegotiateContext(
                SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
                struct.pack("<HHH", 1, len(salt), SMB2_PREAUTH_INTEGRITY_SHA512) + salt))
        elif context.context_type == SMB2_ENCRYPTION_CAPABILITIES:
            offered = _u16_list(data, 0, 2)
            chosen = 0  # no cipher in common (or encryption off): the client then does not encrypt
            if connection.server.config.encryption != "off":
                chosen = next((c for c in _CIPHER_PREFERENCE if c in offered), 0)
            connection.cipher_id = chosen
            answers.append(wire.NegotiateContext(SMB2_ENCRYPTION_CAPABILITIES, struct.pack("<HH", 1, chosen)))
        elif context.context_type == SMB2_SIGNING_CAPABILITIES:
            offered = _u16_list(data, 0, 2)
            chosen = next((a for a in _SIGNING_PREFERENCE if a in offered), None)
            if chosen is None:
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            connection.signing_algorithm = chosen
            answers.append(wire.NegotiateContext(SMB2_SIGNING_CAPABILITIES, struct.pack("<HH", 1, chosen)))
        elif context.context_type == SMB2_POSIX_EXTENSIONS_AVAILABLE:
            # [POSIX-SMB2]: DataLength is a multiple of 16 (one GUID per version the client speaks); answer
            # with the version we speak, once. Samba refuses other lengths the same way.
            if len(data) % 16:
                raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
            versions = {data[i:i + 16] for i in range(0, len(data), 16)}
            if connection.server.config.posix and POSIX_EXTENSIONS_GUID in versions:
                connection.posix_extensions = True
                answers.append(wire.NegotiateContext(SMB2_POSIX_EXTENSIONS_AVAILABLE, POSIX_EXTENSIONS_GUID))
    if not preauth_ok:
        raise SmbError(NtStatus.STATUS_INVALID_PARAMETER)
    return answers


# -- SMB1 upgrade ------------------------------------------------------------------------------------------------

_SMB1_HEADER_SIZE = 32
_SMB_COM_NEGOTIATE = 0x72


def handle_smb1_negotiate(connection: Connection, message: memoryview) -> bytes:
    """[MS-SMB2] 3.3.5.3.1: answer an SMB1 multi-protocol NEGOTIATE that offers SMB2 with an SMB2 NEGOTIATE
    response; anything else SMB1 ends the connection (SMB1 is not served)."""
    if len(message) < _SMB1_HEADER_SIZE + 3 or message[4] != _SMB_COM_NEGOTIATE:
        raise ProtocolViolation("SMB1 is not supported")
    word_count = message[_SMB1_HEADER_SIZE]
    byte_count_at = _SMB1_HEADER_SIZE + 1 + 2 * word_count
    if len(message) < byte_count_at + 2:
        raise ProtocolViolation("truncated SMB1 NEGOTIATE")
    (byte_count,) = _U16.unpack_from(message, byte_count_at)
    raw = bytes(message[byte_count_at + 2:byte_count_at + 2 + byte_count])
    dialects = [part.lstrip(b"\x02") for part in raw.split(b"\x00") if part]
    if b"SMB 2.???" in dialects:
        dialect = Dialect.SMB2_WILDCARD
    elif b"SMB 2.002" in dialects:
        dialect = Dialect.SMB2_0_2
    else:
        raise ProtocolViolation("SMB1 NEGOTIATE without an SMB2 dialect")
    connection.credits.consume(0, 1)
    config = connection.server.config
    security_mode = SMB2_NEGOTIATE_SIGNING_ENABLED | (
        SMB2_NEGOTIATE_SIGNING_REQUIRED if config.signing == "required" else 0)
    body = wire.NegotiateResponse(
        security_mode=security_mode, dialect_revision=dialect, server_guid=connection.server.server_guid,
        capabilities=0, max_transact_size=_SMB2_0_2_MAX_SIZE, max_read_size=_SMB2_0_2_MAX_SIZE,
        max_write_size=_SMB2_0_2_MAX_SIZE, system_time=filetime_now(), server_start_time=0,
        security_buffer=connection.server.authenticator.negotiate_token()).encode()
    if dialect == Dialect.SMB2_0_2:
        connection.negotiated = True
        connection.dialect = dialect
        connection.server_security_mode = security_mode
    response = bytearray(HEADER_SIZE + len(body))
    encode_response_header(response, 0, status=0, command=Command.NEGOTIATE, credit_charge=0,
                           credits=connection.credits.grant(1, 1), flags=SMB2_FLAGS_SERVER_TO_REDIR,
                           next_command=0, message_id=0, tree_id=0, async_id=0, session_id=0)
    response[HEADER_SIZE:] = body
    return bytes(response)
