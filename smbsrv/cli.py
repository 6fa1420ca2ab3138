"""Command line: `smbsrv serve`, `smbsrv check-config`, `smbsrv status`, `smbsrv reload`, `smbsrv close-session`,
`smbsrv close-file`, `smbsrv user ...`, `smbsrv hsm release|status`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tomllib
from typing import Any

from smbsrv.auth.usercmd import add_user_parser
from smbsrv.auth.users import UserDB
from smbsrv.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    ServerConfig,
    ShareConfig,
    check_share_paths,
    check_values,
    load_config,
    share_with_options,
    validate_share_name,
    with_overrides,
)
from smbsrv.fs import identity
from smbsrv.hsm.cli import add_hsm_parser

log = logging.getLogger("smbsrv")


def _share_flag(text: str) -> ShareConfig:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--share expects NAME=PATH, got {text!r}")
    try:
        validate_share_name(name)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return ShareConfig(name=name, path=os.path.abspath(path))


def _share_option_flag(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value in TOML syntax as in the config file (false, 0o755, "wsl"); a bare word is a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--share-option expects KEY=VALUE, got {text!r}")
    try:
        return key, tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return key, raw


def _user_flag(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--user expects NAME:PASSWORD, got {text!r}")
    return name, password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smbsrv", description="SMB2/3 file server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server in the foreground")
    serve.add_argument("-c", "--config", help=f"TOML config file (e.g. {DEFAULT_CONFIG_PATH})")
    serve.add_argument("--share", action="append", type=_share_flag, default=[], metavar="NAME=PATH",
                       help="serve PATH as share NAME (repeatable; replaces the config's shares)")
    serve.add_argument("--share-option", action="append", type=_share_option_flag, default=[], metavar="KEY=VALUE",
                       help="a setting of every --share share, as in the config file (repeatable)")
    serve.add_argument("--user", action="append", type=_user_flag, default=[], metavar="NAME:PASSWORD",
                       help="an in-memory user (repeatable; replaces the users file)")
    serve.add_argument("--listen", action="append", metavar="ADDR", help="address to listen on (repeatable)")
    serve.add_argument("--port", type=int, help="TCP port (default 445; 0 picks a free one)")
    serve.add_argument("--signing", choices=("off", "desired", "required"))
    serve.add_argument("--encryption", choices=("off", "desired", "required"))
    serve.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    for name, text in (("status", "sessions, tree connects, open files and locks of the running server"),
                       ("reload", "make the running server re-read its config and users file"),
                       ("close-session", "close the matching sessions of the running server, with their opens"),
                       ("close-file", "close open files of the running server by the FileId status shows")):
        control = commands.add_parser(name, help=text)
        control.add_argument("-c", "--config", default=os.environ.get("SMBSRV_CONFIG"),
                             help="the server's config file, to find its control socket (default $SMBSRV_CONFIG)")
        control.add_argument("-s", "--socket", help="the control socket (default: from the config)")
        if name == "status":
            control.add_argument("--json", action="store_true", help="print JSON")
        if name == "close-session":
            control.add_argument("--session", help="a session id (0x... as status shows it)")
            control.add_argument("--user", help="every session of this user")
            control.add_argument("--client", help="every session from this address (with or without :port)")
        if name == "close-file":
            control.add_argument("file_ids", nargs="+", type=int, metavar="FILEID")
    add_user_parser(commands, default_users_file=ServerConfig.users_file)
    add_hsm_parser(commands)
    return parser


def _serve_config(args: argparse.Namespace) -> ServerConfig:
    config = load_config(args.config) if args.config else ServerConfig()
    changes = {
        "shares": tuple(share_with_options(share, dict(args.share_option)) for share in args.share)
        if args.share else None,
        "listen": tuple(args.listen) if args.listen else None,
        "port": args.port,
        "signing": args.signing,
        "encryption": args.encryption,
        "log_level": args.log_level,
    }
    config = with_overrides(config, **changes)
    check_values(config)
    if not config.shares:
        raise ConfigError("no shares: give --share NAME=PATH or a config file with [shares.NAME]")
    check_share_paths(config)
    return config


def _quick_users(pairs: list[tuple[str, str]], config: ServerConfig) -> UserDB:
    """`--user NAME:PASSWORD` users act as the Unix account NAME when it exists, else as the owner of the first
    share's directory: a root server never acts as root for a quick-use user it knows nothing about."""
    import pwd

    owner = pwd.getpwuid(os.stat(config.shares[0].path).st_uid).pw_name
    db = UserDB.from_pairs([])
    for name, password in pairs:
        try:
            pwd.getpwnam(name)
            unix_user = name
        except KeyError:
            unix_user = owner
        db.add(name, password, unix_user)
    return db


def serve(args: argparse.Namespace) -> int:
    try:
        config = _serve_config(args)
    except ConfigError as exc:
        print(f"smbsrv: {exc}", file=sys.stderr)
        return 2
    # Log records may be written from a thread acting as a client: the handler writes as the server.
    logging.basicConfig(level=config.log_level.upper() if config.log_level.upper() != "TRACE" else "DEBUG",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[identity.ServerIdentityHandler(logging.StreamHandler(sys.stderr))])
    identity.install_import_guard()
    if any(share.hsm_provider for share in config.shares):
        from smbsrv.hsm import startup

        try:
            startup.start(config)  # placeholder shares: marks usable, fanotify listener (docs/hsm.md)
        except ConfigError as exc:
            print(f"smbsrv: {exc}", file=sys.stderr)
            return 2
    users = _quick_users(args.user, config) if args.user else UserDB.load(config.users_file)
    if not len(users) and not any(share.guest_ok for share in config.shares):
        log.warning("no users defined (users file %s): add one with `smbsrv user add NAME`", config.users_file)
    from smbsrv.daemon import run
    from smbsrv.state import ServerState

    state = ServerState(config, users)

    def reload_source() -> tuple[ServerConfig, UserDB]:
        # The same sources as at start: the config file with the command line's overrides, the users file.
        new_config = _serve_config(args)
        return new_config, (_quick_users(args.user, new_config) if args.user else UserDB.load(new_config.users_file))

    runner = asyncio.run
    if os.environ.get("SMBSRV_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    runner(run(config, state, reload_source))
    return 0


def _control_request(args: argparse.Namespace, command: str, **arguments: object) -> dict[str, object] | None:
    from smbsrv.control import ControlError, request

    try:
        return request(args.socket or _control_socket_of(args.config), command, **arguments)
    except (ConfigError, ControlError) as exc:
        print(f"smbsrv {command}: {exc}", file=sys.stderr)
        return None


def _control_socket_of(config_path: str | None) -> str:
    """Where the server of `config_path` listens. Only the two keys that say so are read: a config that does
    not validate (the very thing `smbsrv reload` must report) still names its server's socket."""
    import tomllib

    server: dict[str, object] = {}
    if config_path:
        try:
            with open(config_path, "rb") as file:
                server = tomllib.load(file).get("server", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config_path}: {exc}; name the control socket with -s") from None
    control_socket = server.get("control_socket") or ""
    state_dir = server.get("state_dir") or ServerConfig.state_dir
    if not isinstance(control_socket, str) or not isinstance(state_dir, str):
        raise ConfigError(f"{config_path}: control_socket and state_dir must be strings; use -s")
    return ServerConfig(control_socket=control_socket, state_dir=state_dir).control_socket_path


def status(args: argparse.Namespace) -> int:
    import json

    from smbsrv.control import format_status

    reply = _control_request(args, "status")
    if reply is None:
        return 1
    snapshot = reply["status"]
    print(json.dumps(snapshot, indent=2) if args.json else format_status(snapshot), end="\n" if args.json else "")
    return 0


def reload(args: argparse.Namespace) -> int:
    reply = _control_request(args, "reload")
    if reply is None:
        return 1
    for key in ("added_shares", "removed_shares", "changed_shares"):
        names = reply.get(key) or []
        if names:
            print(f"{key.replace('_', ' ')}: {', '.join(names)}")  # type: ignore[arg-type]
    restart = reply.get("restart_needed") or []
    if restart:
        print(f"not applied until a restart: {', '.join(restart)}")  # type: ignore[arg-type]
    print("reloaded")
    return 0


def close_session(args: argparse.Namespace) -> int:
    if args.session is None and args.user is None and args.client is None:
        print("smbsrv close-session: name the sessions: --session, --user or --client", file=sys.stderr)
        return 2
    arguments = {key: value for key, value in (("session", args.session), ("user", args.user),
                                                ("client", args.client)) if value is not None}
    reply = _control_request(args, "close-session", **arguments)
    if reply is None:
        return 1
    closed: list[dict[str, object]] = reply["closed"]  # type: ignore[assignment]
    for entry in closed:
        print(f"closed session {entry['session_id']} of {entry['user']} from {entry['client']} "
              f"({entry['opens_closed']} open(s))")
    if not closed:
        print("smbsrv close-session: no session matched", file=sys.stderr)
        return 1
    return 0


# FileIds per control request: each is up to 20 digits, and a request line is at most 4 KiB (control.py).
_FILE_IDS_PER_REQUEST = 150


def close_file(args: argparse.Namespace) -> int:
    closed: list[dict[str, object]] = []
    failed = False
    for start in range(0, len(args.file_ids), _FILE_IDS_PER_REQUEST):
        reply = _control_request(args, "close-file", file_ids=args.file_ids[start:start + _FILE_IDS_PER_REQUEST])
        if reply is None:
            failed = True  # the error is printed; what earlier requests closed still is below
            break
        closed += reply["closed"]  # type: ignore[arg-type]
    for entry in closed:
        print(f"closed FileId {entry['file_id']}: {entry['share']}/{entry['path']} (session {entry['session_id']})")
    if failed:
        return 1
    missing = sorted(set(args.file_ids) - {entry["file_id"] for entry in closed})
    if missing:
        print(f"smbsrv close-file: no open with FileId {', '.join(map(str, missing))}", file=sys.stderr)
        return 1
    return 0


def check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
        check_share_paths(config)
    except ConfigError as exc:
        print(f"smbsrv: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK ({len(config.shares)} share(s), port {config.port})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    if args.command == "check-config":
        return check_config(args)
    if args.command == "status":
        return status(args)
    if args.command == "reload":
        return reload(args)
    if args.command == "close-session":
        return close_session(args)
    if args.command == "close-file":
        return close_file(args)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
