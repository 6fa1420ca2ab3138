"""A daemon started from a config file and a users file, as an administrator runs it (issue 17's tests)."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from smbsrv.auth.users import UserDB
from tests.conftest import (
    PASSWORD,
    REPO,
    USER,
    SmbServer,
    assert_no_server_bugs,
    serving_account,
    start_server,
    stop_server,
)


def unix_account() -> str:
    """The Unix account SMB users act as: the suite's non-root account, or the invoking user."""
    account = serving_account()
    return account.pw_name if account is not None else pwd.getpwuid(os.getuid()).pw_name


def write_users(path: Path, users: dict[str, str]) -> None:
    if path.exists():
        path.unlink()
    db = UserDB.load(path)
    for name, password in users.items():
        db.add(name, password, unix_account())
    db.save()


def write_config(path: Path, shares: dict[str, Path], **server: object) -> None:
    lines = ["[server]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in server.items()]
    for name, share_path in shares.items():
        lines += [f"[shares.{name}]", f"path = {json.dumps(str(share_path))}"]
    path.write_text("\n".join(lines) + "\n")


@dataclass
class OpsServer:
    server: SmbServer
    config: Path
    users: Path
    socket: Path
    base: Path
    settings: dict[str, object]

    def smbsrv(self, *args: str, user: int | None = None, group: int | None = None,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the `smbsrv` command line (status, reload) against this server's control socket."""
        result = subprocess.run([sys.executable, "-m", "smbsrv", *args], capture_output=True, text=True,
                                timeout=60, cwd=REPO, check=False, user=user, group=group,
                                extra_groups=[] if user is not None else None)
        if check and result.returncode != 0:
            raise AssertionError(f"smbsrv {args}: {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def status(self) -> dict[str, object]:
        return json.loads(self.smbsrv("status", "--json", "-c", str(self.config), check=True).stdout)  # type: ignore[no-any-return]

    def rewrite(self, shares: dict[str, Path], **changes: object) -> None:
        write_config(self.config, shares, **{**self.settings, **changes})

    def wait_log(self, pattern: str, count: int = 1, timeout_s: float = 10) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            matches = list(re.finditer(pattern, self.server.log_text()))
            if len(matches) >= count:
                return matches[count - 1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} (x{count}) in the log:\n{self.server.log_text()[-3000:]}")
            time.sleep(0.05)


@contextmanager
def ops_server(base: Path, shares: dict[str, Path] | None = None, users: dict[str, str] | None = None,
               env: dict[str, str] | None = None, **server: object) -> Iterator[OpsServer]:
    """A daemon on 127.0.0.1 with a config file in `base` (its shares, a users file, a state dir and a
    control socket of its own), stopped afterwards; the log must show no handler bug."""
    if shares is None:
        shares = {"share": base / "share"}
    for path in shares.values():
        path.mkdir(exist_ok=True)
    users_path = base / "users"
    write_users(users_path, users if users is not None else {USER: PASSWORD})
    settings: dict[str, object] = {"users_file": str(users_path), "state_dir": str(base / "state"),
                                   "control_socket": str(base / "control.sock"), **server}
    config = base / "smbsrv.toml"
    write_config(config, shares, **settings)
    smb = start_server(next(iter(shares.values())), base / "server.log", config=config, users=(), env=env)
    try:
        yield OpsServer(smb, config, users_path, base / "control.sock", base, settings)
    finally:
        stop_server(smb.process)
    assert_no_server_bugs(smb)
