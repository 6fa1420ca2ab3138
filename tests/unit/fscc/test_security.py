"""SIDs and self-relative security descriptors ([MS-DTYP] 2.4.2, 2.4.4-2.4.6), cross-checked with impacket's
ldaptypes parser and builder."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from impacket.ldap import ldaptypes

from smbsrv.fscc import security as sec
from smbsrv.fscc.security import Ace, Acl, SecurityDescriptor, Sid
from smbsrv.protocol.errors import SmbError
from smbsrv.wire.status import NtStatus
from tests.impacket_sd import impacket_descriptor
from tests.unit.fscc.sample import u16, u32

ADMINISTRATORS = bytes.fromhex("0102000000000005 20000000 20020000")  # S-1-5-32-544


def test_sid_binary_and_string_forms() -> None:
    sid = Sid.from_string("S-1-5-32-544")
    assert sid.encode() == ADMINISTRATORS and sid.size == 16
    assert sec.decode_sid(ADMINISTRATORS) == (sid, 16)
    assert str(sid) == "S-1-5-32-544"
    assert str(sec.SID_EVERYONE) == "S-1-1-0" and sec.SID_EVERYONE.encode() == bytes.fromhex(
        "0101000000000001 00000000"
    )
    big = Sid.from_string("S-1-0x123456789ABC-7")
    assert big.encode()[2:8] == bytes.fromhex("123456789abc") and str(big) == "S-1-0x123456789ABC-7"
    assert str(Sid(5, ())) == "S-1-5"


def test_unix_sids() -> None:
    assert sec.unix_user_sid_bytes(1000) == sec.unix_user_sid(1000).encode()
    assert str(sec.unix_user_sid(1000)) == "S-1-22-1-1000"
    assert str(sec.unix_group_sid(4294967294)) == "S-1-22-2-4294967294"
    assert sec.unix_group_sid_bytes(100) == bytes.fromhex("0102000000000016 02000000 64000000")
    parsed = ldaptypes.LDAP_SID(data=sec.unix_user_sid_bytes(1000))
    assert parsed.formatCanonical() == "S-1-22-1-1000"


@pytest.mark.parametrize(
    "text", ["", "S-1", "X-1-5", "S-2-5-1", "S-1-5-" + "-".join(["1"] * 16), "S-1-5-4294967296"]
)
def test_sid_from_bad_strings(text: str) -> None:
    with pytest.raises(ValueError):
        Sid.from_string(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        ADMINISTRATORS[:7],
        ADMINISTRATORS[:15],
        bytes([2]) + ADMINISTRATORS[1:],  # revision 2
        bytes([1, 16]) + bytes(6) + bytes(64),  # 16 sub-authorities
    ],
)
def test_decode_bad_sids(data: bytes) -> None:
    with pytest.raises(SmbError) as excinfo:
        sec.decode_sid(data)
    assert excinfo.value.status == NtStatus.STATUS_INVALID_PARAMETER


def _owner_group_dacl(uid: int, gid: int, masks: tuple[int, int, int]) -> SecurityDescriptor:
    aces = tuple(Ace(sec.ACCESS_ALLOWED_ACE_TYPE, 0, mask, sid)
                 for mask, sid in zip(masks, (sec.unix_user_sid(uid), sec.unix_group_sid(gid), sec.SID_EVERYONE)))
    return SecurityDescriptor(sec.SE_DACL_PRESENT, sec.unix_user_sid(uid), sec.unix_group_sid(gid), None, Acl(aces))


def test_encode_descriptor_layout() -> None:
    data = sec.encode_descriptor(_owner_group_dacl(1000, 100, (sec.FILE_ALL_ACCESS, 0x1200A9, 0)))
    assert data[0] == 1 and data[1] == 0
    assert u16(data, 2) == sec.SE_SELF_RELATIVE | sec.SE_DACL_PRESENT
    assert u32(data, 4) == 20 and u32(data, 8) == 36 and u32(data, 12) == 0 and u32(data, 16) == 52
    assert data[20:36] == sec.unix_user_sid_bytes(1000) and data[36:52] == sec.unix_group_sid_bytes(100)
    # DACL: revision 2, size 8 + 24 + 24 + 20, three ACEs.
    assert data[52] == 2 and u16(data, 54) == 76 and u16(data, 56) == 3 and len(data) == 52 + 76
    assert data[60:64] == bytes([0, 0]) + struct.pack("<H", 24)
    assert u32(data, 64) == sec.FILE_ALL_ACCESS

    parsed = ldaptypes.SR_SECURITY_DESCRIPTOR(data=data)  # an independent decoder
    assert parsed["OwnerSid"].formatCanonical() == "S-1-22-1-1000"
    assert parsed["GroupSid"].formatCanonical() == "S-1-22-2-100"
    aces = [
        (a["AceType"], a["Ace"]["Mask"]["Mask"], a["Ace"]["Sid"].formatCanonical())
        for a in parsed["Dacl"].aces
    ]
    assert aces == [(0, sec.FILE_ALL_ACCESS, "S-1-22-1-1000"), (0, 0x1200A9, "S-1-22-2-100"), (0, 0, "S-1-1-0")]


def _impacket_descriptor(aces: list[tuple[int, int, str]], owner: str | None = "S-1-5-32-544") -> bytes:
    return impacket_descriptor(aces, owner)


def test_parse_impacket_descriptor() -> None:
    data = _impacket_descriptor([(0, 0x1F01FF, "S-1-5-32-544"), (1, 0x10000, "S-1-1-0")])
    parsed = sec.parse_descriptor(data)
    assert parsed.owner == Sid.from_string("S-1-5-32-544") and parsed.group is None
    assert parsed.dacl is not None
    assert parsed.dacl.aces == (
        Ace(0, 0, 0x1F01FF, Sid.from_string("S-1-5-32-544")),
        Ace(1, 0, 0x10000, Sid.from_string("S-1-1-0")),
    )


def test_posix_chmod_dacl() -> None:
    chmod = _impacket_descriptor([(0, 0, "S-1-5-88-3-493")], owner=None)  # 493 = 0o755
    assert sec.posix_mode_from_dacl(sec.parse_descriptor(chmod)) == 0o755
    setuid = _impacket_descriptor([(0, 0, "S-1-5-88-3-2541")], owner=None)  # 0o4755
    assert sec.posix_mode_from_dacl(sec.parse_descriptor(setuid)) == 0o4755
    for aces in (
        [(1, 0, "S-1-5-88-3-493")],  # denied ACE: modefromsid form, not POSIX chmod
        [(0, 0, "S-1-5-88-3-493"), (0, 0x1F01FF, "S-1-5-11")],
        [(0, 0, "S-1-5-88-1-1000")],
        [(0, 0, "S-1-22-1-1000")],
        [],
    ):
        assert sec.posix_mode_from_dacl(sec.parse_descriptor(_impacket_descriptor(aces))) is None
    owner_only = SecurityDescriptor(0, sec.unix_user_sid(1), None, None, None)
    assert sec.posix_mode_from_dacl(sec.parse_descriptor(sec.encode_descriptor(owner_only))) is None


def test_encode_descriptor_round_trip() -> None:
    sd = SecurityDescriptor(
        control=sec.SE_DACL_PRESENT | sec.SE_SACL_PRESENT,
        owner=Sid.from_string("S-1-5-21-1-2-3-500"),
        group=Sid.from_string("S-1-5-21-1-2-3-513"),
        sacl=Acl((Ace(sec.SYSTEM_AUDIT_ACE_TYPE, sec.FAILED_ACCESS_ACE_FLAG, 0x10000, sec.SID_EVERYONE),)),
        dacl=Acl(
            (
                Ace(
                    0,
                    sec.OBJECT_INHERIT_ACE | sec.CONTAINER_INHERIT_ACE,
                    0x1F01FF,
                    sec.SID_AUTHENTICATED_USERS,
                ),
                Ace(
                    sec.ACCESS_ALLOWED_OBJECT_ACE_TYPE,
                    0,
                    0x10,
                    None,
                    bytes.fromhex("10000000 00000000") + ADMINISTRATORS,
                ),
            )
        ),
    )
    data = sec.encode_descriptor(sd)
    parsed = sec.parse_descriptor(data)
    assert parsed.owner == sd.owner and parsed.group == sd.group and parsed.sacl == sd.sacl
    assert parsed.dacl is not None and parsed.dacl.aces[0] == sd.dacl.aces[0]  # type: ignore[union-attr]
    assert parsed.dacl.aces[1].body == sd.dacl.aces[1].body  # type: ignore[union-attr]
    assert sec.encode_descriptor(parsed) == data


def test_null_dacl() -> None:
    data = struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 0)
    parsed = sec.parse_descriptor(data)
    assert parsed.has_null_dacl and parsed.dacl is None
    assert not sec.parse_descriptor(struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)).has_null_dacl


def _with_dacl(acl: bytes) -> bytes:
    return struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + acl


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(19),
        struct.pack("<BBHIIII", 2, 0, 0x8000, 0, 0, 0, 0),  # revision 2
        struct.pack("<BBHIIII", 1, 0, 0x0004, 0, 0, 0, 0),  # not self-relative
        struct.pack("<BBHIIII", 1, 0, 0x8000, 20, 0, 0, 0),  # owner offset at the end
        struct.pack("<BBHIIII", 1, 0, 0x8000, 12, 0, 0, 0) + ADMINISTRATORS,  # offset inside the header
        struct.pack("<BBHIIII", 1, 0, 0x8000, 20, 0, 0, 0) + ADMINISTRATORS[:12],  # truncated SID
        struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0xFFFFFFFF, 0, 0),
        _with_dacl(struct.pack("<BBHHH", 3, 0, 8, 0, 0)),  # ACL revision 3
        _with_dacl(struct.pack("<BBHHH", 2, 0, 7, 0, 0)),  # AclSize below the header
        _with_dacl(struct.pack("<BBHHH", 2, 0, 64, 0, 0)),  # AclSize past the buffer
        _with_dacl(struct.pack("<BBHHH", 2, 0, 8, 1, 0)),  # one ACE announced, none there
        _with_dacl(struct.pack("<BBHHH", 2, 0, 12, 1, 0) + struct.pack("<BBH", 0, 0, 2)),  # AceSize < 4
        _with_dacl(struct.pack("<BBHHH", 2, 0, 16, 1, 0) + struct.pack("<BBHI", 0, 0, 8, 0)),  # no SID
        _with_dacl(
            struct.pack("<BBHHH", 2, 0, 32, 1, 0) + struct.pack("<BBHI", 0, 0, 40, 0) + ADMINISTRATORS
        ),
        _with_dacl(
            struct.pack("<BBHHH", 2, 0, 40, 1, 0)
            + struct.pack("<BBHI", 0, 0, 20, 0)
            + ADMINISTRATORS
            + bytes(12)
        ),  # SID runs past AceSize
        _with_dacl(struct.pack("<BBHHH", 2, 0, 16, 0xFFFF, 0) + bytes(8)),  # absurd AceCount
    ],
)
def test_parse_malformed(data: bytes) -> None:
    with pytest.raises(SmbError) as excinfo:
        sec.parse_descriptor(data)
    assert excinfo.value.status == NtStatus.STATUS_INVALID_PARAMETER


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=160))
def test_parse_random_bytes_only_raises_smb_error(data: bytes) -> None:
    try:
        sec.parse_descriptor(data)
    except SmbError:
        pass


VALID = sec.encode_descriptor(_owner_group_dacl(1000, 100, (sec.FILE_ALL_ACCESS, 0x1200A9, 0x1200A9)))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, len(VALID)),
)
def test_parse_mutated_descriptor_only_raises_smb_error(changes: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(VALID)
    for position, value in changes:
        data[position] = value
    try:
        sec.parse_descriptor(bytes(data[:cut]))
    except SmbError:
        pass
