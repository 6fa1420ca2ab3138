"""`smbsrv hsm release PATH...|--policy` and `smbsrv hsm status`: placeholders from the command line.

Both read the server's config file (for the shares' providers and state_dir) and work on the share's files
directly, next to a running daemon or without one (release.py says why that is safe). Run as root: marks are
trusted.* xattrs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from smbsrv.config import ConfigError, ServerConfig, ShareConfig, load_config


def add_hsm_parser(commands: Any) -> None:
    hsm = commands.add_parser("hsm", help="placeholder files: release content to a provider, show status")
    actions = hsm.add_subparsers(dest="hsm_command", required=True)
    for name, text in (("release", "turn files into placeholders (upload, verify, punch out)"),
                       ("status", "placeholders, hydrations in flight, provider health")):
        action = actions.add_parser(name, help=text)
        action.add_argument("-c", "--config", default=os.environ.get("SMBSRV_CONFIG"),
                            help="the server's config file (default $SMBSRV_CONFIG)")
        action.add_argument("--json", action="store_true", help="print JSON")
        if name == "release":
            action.add_argument("paths", nargs="*", metavar="PATH", help="files inside a share with a provider")
            action.add_argument("--policy", action="store_true",
                                help="release what each share's hsm_release_after_days/min_bytes select")
        action.set_defaults(func=release if name == "release" else status)


def _config(args: argparse.Namespace) -> ServerConfig:
    if not args.config:
        raise ConfigError("give the server's config file (-c or $SMBSRV_CONFIG)")
    return load_config(args.config)


def _share_of(config: ServerConfig, path: str) -> ShareConfig:
    real = os.path.realpath(path)
    for share in config.shares:
        root = os.path.realpath(share.path)
        if share.hsm_provider and (real == root or real.startswith(root + os.sep)):
            return share
    raise ConfigError(f"{path}: not inside a share with hsm_provider")


def release(args: argparse.Namespace) -> int:
    from smbsrv.hsm.fanotify import exempt
    from smbsrv.hsm.release import policy_candidates

    try:
        config = _config(args)
        work: list[tuple[ShareConfig, str]] = [(_share_of(config, path), path) for path in args.paths]
    except ConfigError as exc:
        print(f"smbsrv: {exc}", file=sys.stderr)
        return 1
    if args.policy:
        for share in config.shares:
            if share.hsm_provider and (share.hsm_release_after_days or share.hsm_release_min_bytes):
                work += [(share, path) for path in policy_candidates(
                    share.path, after_days=share.hsm_release_after_days, min_bytes=share.hsm_release_min_bytes)]
    with exempt(config.state_dir):
        results = _release_all(work)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for entry in results:
            if not entry["ok"]:
                print(f"{entry['path']}: refused: {entry['error']}")
            elif entry.get("already"):
                print(f"{entry['path']}: already a placeholder")
            else:
                print(f"{entry['path']}: released {entry['size']} bytes as {entry['key'][:16]}"
                      f"{' (object reused)' if entry['reused'] else ''}")
    return 1 if any(not entry["ok"] for entry in results) else 0


def _release_all(work: list[tuple[ShareConfig, str]]) -> list[dict[str, Any]]:
    from smbsrv.hsm.access import make_provider
    from smbsrv.hsm.release import release_file

    providers: dict[str, Any] = {}
    results: list[dict[str, Any]] = []
    for share, path in work:
        provider = providers.get(share.name) or providers.setdefault(share.name, make_provider(share))
        try:
            done = release_file(path, provider)
        except Exception as exc:  # noqa: BLE001  (reported per file; the others go on)
            results.append({"path": path, "ok": False, "error": str(exc)})
            continue
        if done is None:
            results.append({"path": path, "ok": True, "already": True})
        else:
            results.append({"path": path, "ok": True, "size": done.size, "key": done.key, "reused": done.reused})
    return results


def status(args: argparse.Namespace) -> int:
    from smbsrv.hsm.access import make_provider
    from smbsrv.hsm.release import inflight, placeholders

    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"smbsrv: {exc}", file=sys.stderr)
        return 1
    report: dict[str, Any] = {"shares": [], "hydrating": inflight(config.state_dir)}
    for share in config.shares:
        if not share.hsm_provider:
            continue
        provider = make_provider(share)
        try:
            provider.health()
            health = "ok"
        except OSError as exc:
            health = f"unavailable: {exc}"
        found = placeholders(share.path)
        report["shares"].append({"share": share.name, "provider": share.hsm_provider, "provider_id": share.hsm_id,
                                 "health": health, "placeholders": found})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for entry in report["shares"]:
        print(f"share {entry['share']}: provider {entry['provider']} ({entry['provider_id']}): {entry['health']}")
        for item in entry["placeholders"]:
            print(f"  {item['path']}: {item.get('size', '?')} bytes {item.get('error', '')}".rstrip())
    for item in report["hydrating"]:
        share_done = 100 * item["done"] // max(item["size"], 1)
        print(f"hydrating {item['name']}: {item['done']} of {item['size']} bytes ({share_done}%)")
    return 0
