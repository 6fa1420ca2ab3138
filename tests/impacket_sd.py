"""Self-relative security descriptors built by impacket's own codec (ldaptypes), so that tests of smbsrv's
descriptor handling never grade themselves with smbsrv's encoder."""

from __future__ import annotations

from impacket.ldap import ldaptypes

ALLOWED, DENIED = 0, 1  # ACE types ([MS-DTYP] 2.4.4.1)


def impacket_descriptor(aces: list[tuple[int, int, str]], owner: str | None = None) -> bytes:
    """A descriptor with a DACL of `aces` ((ace type, access mask, SID text), no inheritance flags), SE_DACL_PRESENT
    and SE_SELF_RELATIVE, and `owner` when given; no group and no SACL."""
    sd = ldaptypes.SR_SECURITY_DESCRIPTOR()
    sd["Revision"] = b"\x01"
    sd["Sbz1"] = b"\x00"
    sd["Control"] = 0x8004
    if owner:
        sd["OwnerSid"] = ldaptypes.LDAP_SID()
        sd["OwnerSid"].fromCanonical(owner)
    else:
        sd["OwnerSid"] = b""
    sd["GroupSid"] = b""
    sd["Sacl"] = b""
    acl = ldaptypes.ACL()
    acl["AclRevision"] = 2
    acl["Sbz1"] = 0
    acl["Sbz2"] = 0
    acl.aces = []
    for ace_type, mask, sid_text in aces:
        ace = ldaptypes.ACE()
        ace["AceType"] = ace_type
        ace["AceFlags"] = 0
        body = ldaptypes.ACCESS_ALLOWED_ACE()  # the same layout for a denied ACE
        body["Mask"] = ldaptypes.ACCESS_MASK()
        body["Mask"]["Mask"] = mask
        body["Sid"] = ldaptypes.LDAP_SID()
        body["Sid"].fromCanonical(sid_text)
        ace["Ace"] = body
        acl.aces.append(ace)
    sd["Dacl"] = acl
    return bytes(sd.getData())
