"""`smbsrv user add|del|passwd|list`: edit the users file (see smbsrv.auth.users for its format).

The CLI registers the commands with `add_user_parser(subparsers, default_users_file)` and runs the parsed
arguments with `args.func(args)` (or `run(args)`), which returns the process exit code:
0 success, 1 refused (unknown or existing user, passwords that differ, unreadable file), 2 usage (argparse).

Passwords come from a prompt (asked twice, not echoed), from one line of standard input with
`--password-stdin`, or from `--password` (visible to other local users in the process list; for scripts only).
"""

import argparse
import getpass
import grp
import os
import pathlib
import pwd
import sys
from collections.abc import Callable
from typing import TextIO

from smbsrv.auth.users import UserDB, UserDBError

EXIT_OK = 0
EXIT_FAILED = 1


def add_user_parser(
    subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]",
    default_users_file: str | os.PathLike[str],
) -> argparse.ArgumentParser:
    """Register `user` and its actions on the CLI's subparsers; returns the `user` parser."""
    user_parser = subparsers.add_parser("user", help="manage SMB users (the users file)")
    actions = user_parser.add_subparsers(dest="user_action", required=True, metavar="ACTION")

    file_option = argparse.ArgumentParser(add_help=False)
    file_option.add_argument(
        "--users-file",
        type=pathlib.Path,
        default=pathlib.Path(default_users_file),
        help="users file to edit (default: %(default)s)",
    )
    password_options = argparse.ArgumentParser(add_help=False)
    source = password_options.add_mutually_exclusive_group()
    source.add_argument("--password", help="the password (visible in the process list; prefer the prompt)")
    source.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    add = actions.add_parser("add", parents=[file_option, password_options], help="add a user")
    add.add_argument("name")
    add.add_argument("--unix-user", help="Unix account the user acts as (default: the same name)")
    delete = actions.add_parser("del", parents=[file_option], help="remove a user")
    delete.add_argument("name")
    passwd = actions.add_parser("passwd", parents=[file_option, password_options], help="change a password")
    passwd.add_argument("name")
    actions.add_parser("list", parents=[file_option], help="list users and their Unix accounts")

    user_parser.set_defaults(func=run)
    return user_parser


PasswordPrompt = Callable[[str], str]


def run(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    prompt: PasswordPrompt = getpass.getpass,
) -> int:
    """Carry out one `user` action; the streams and the prompt are parameters so tests can drive it."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        db = UserDB.load(args.users_file)
        if args.user_action == "list":
            _list(db, stdout)
            return EXIT_OK
        if args.user_action == "del":
            db.remove(args.name)
            db.save()
            print(f"removed user {args.name}", file=stderr)
            return EXIT_OK
        if args.user_action == "add":
            if args.name in db:
                raise UserDBError(f"user {args.name!r} already exists")
            password = _read_password(args, stdin, prompt)
            db.add(args.name, password, args.unix_user)
            db.save()
            unix_user = db.unix_user_of(args.name)
            if not _unix_account_exists(unix_user):
                print(
                    f"warning: Unix account {unix_user!r} does not exist; a root server will refuse this user",
                    file=stderr,
                )
            print(f"added user {args.name} (Unix account {unix_user})", file=stderr)
            return EXIT_OK
        if args.user_action == "passwd":
            db.unix_user_of(args.name)  # fail before prompting for a user that is not there
            db.set_password(args.name, _read_password(args, stdin, prompt))
            db.save()
            print(f"password changed for {args.name}", file=stderr)
            return EXIT_OK
        raise UserDBError(f"unknown action {args.user_action!r}")
    except (UserDBError, OSError) as error:
        print(f"smbsrv user {args.user_action}: {error}", file=stderr)
        return EXIT_FAILED


def _read_password(args: argparse.Namespace, stdin: TextIO, prompt: PasswordPrompt) -> str:
    if args.password is not None:
        password = str(args.password)
    elif args.password_stdin:
        password = stdin.readline().rstrip("\r\n")
    else:
        password = prompt("New SMB password: ")
        if prompt("Retype new SMB password: ") != password:
            raise UserDBError("passwords do not match")
    if not password:
        raise UserDBError("empty passwords are not accepted")
    return password


def _unix_account_exists(unix_user: str) -> bool:
    try:
        pwd.getpwnam(unix_user)
    except KeyError:
        return False
    return True


def _list(db: UserDB, stdout: TextIO) -> None:
    for name in db.names():
        unix_user = db.unix_user_of(name)
        try:
            account = pwd.getpwnam(unix_user)
        except KeyError:
            print(f"{name}\t{unix_user}\t(no such Unix account)", file=stdout)
            continue
        groups = []
        for gid in os.getgrouplist(account.pw_name, account.pw_gid):
            try:
                groups.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                groups.append(str(gid))
        print(
            f"{name}\t{unix_user}\tuid={account.pw_uid} gid={account.pw_gid} groups={','.join(groups)}",
            file=stdout,
        )
