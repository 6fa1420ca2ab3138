"""Decode srvsvc [out] stub data with Samba's own NDR code, the parser `smbclient -L` runs.

Not a test module: test_captured.py runs it under the system Python, which has Samba's bindings
(python3-samba), with one JSON request on stdin:
    {"operation": "NetShareEnumAll" | "NetShareGetInfo" | "NetSrvGetInfo", "level": N, "stub": "<hex>"}
and prints the decoded fields as JSON. A decoding failure exits non-zero with Samba's error.
"""

import json
import sys

from samba import ndr
from samba.dcerpc import srvsvc


def _fields(info):
    """The plain attributes of a Samba NDR object (strings and integers)."""
    out = {}
    for name in dir(info):
        if name.startswith("_"):
            continue
        value = getattr(info, name)
        if value is None or isinstance(value, (int, str)):
            out[name] = value
    return out


def main():
    job = json.load(sys.stdin)
    stub = bytes.fromhex(job["stub"])
    operation = job["operation"]
    if operation == "NetShareEnumAll":
        call = srvsvc.NetShareEnumAll()
        ndr.ndr_unpack_out(call, stub)
        ctr = call.out_info_ctr
        result = {
            "level": ctr.level,
            "count": ctr.ctr.count if ctr.ctr is not None else None,
            "shares": [_fields(entry) for entry in ctr.ctr.array] if ctr.ctr is not None else None,
            "totalentries": call.out_totalentries,
            "resume_handle": call.out_resume_handle,
        }
    elif operation == "NetShareGetInfo":
        call = srvsvc.NetShareGetInfo()
        call.in_level = job["level"]
        ndr.ndr_unpack_out(call, stub)
        result = {"info": _fields(call.out_info) if call.out_info is not None else None}
    else:
        call = srvsvc.NetSrvGetInfo()
        call.in_level = job["level"]
        ndr.ndr_unpack_out(call, stub)
        result = {"info": _fields(call.out_info) if call.out_info is not None else None}
    result["werror"] = call.result[0]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
