"""ECHO ([MS-SMB2] 3.3.5.17)."""

from smbsrv.protocol.context import RequestContext
from smbsrv.wire.simple import ECHO_RESPONSE


def handle(ctx: RequestContext, request: None) -> bytes:
    return ECHO_RESPONSE
