"""Server configuration: TOML read with tomllib into frozen dataclasses.

Every key is checked: an unknown key or a value of the wrong type is an error that names the key, so
`smbsrv check-config` can tell the administrator exactly what is wrong.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 445
DEFAULT_CONFIG_PATH = "conf/smbsrv.toml"


class ConfigError(Exception):
    """A configuration problem; the message names the key and the value."""


@dataclass(frozen=True)
class ShareConfig:
    name: str
    path: str
    comment: str = ""
    read_only: bool = False
    guest_ok: bool = False
    valid_users: tuple[str, ...] = ()  # empty: every authenticated user
    case_sensitive: bool = False
    posix: bool = True  # SMB3 POSIX extensions on this share
    # Bits a new file or directory may get. The POSIX create context's mode (already reduced by the client's
    # umask) is kept within these; setuid and setgid are not granted by default.
    create_mask: int = 0o1777
    directory_mask: int = 0o1777
    # PosixMode carries the file type in bits 12-15 (current spec); Linux clients before 6.13 misread them.
    posix_file_type_bits: bool = True
    # How server-side FIFOs, sockets and devices are presented: "nfs" (IO_REPARSE_TAG_NFS, the Windows NFS
    # server format) or "wsl" (the LX_* tags, which Linux clients before 6.7 understand).
    special_files: str = "nfs"
    # Windows-semantics opens follow symlinks whose target stays inside the share (as older clients expect);
    # targets outside the share, and every POSIX open, still get STATUS_STOPPED_ON_SYMLINK.
    follow_symlinks: bool = False
    # Client-created symlinks, FIFOs and sockets become real objects on the server instead of reparse blobs
    # (safe because the server never follows a symlink); device nodes only with materialize_device_nodes too.
    materialize_special_files: bool = False
    materialize_device_nodes: bool = False
    hide_dot_files: bool = False
    # Named streams ("file:stream", fs/streams.py), kept in xattrs as Samba's vfs_streams_xattr keeps them:
    # Windows keeps a download's Zone.Identifier there, macOS its Finder info. false: any stream name is
    # STATUS_OBJECT_NAME_INVALID, as on a Samba share without a streams module.
    named_streams: bool = True
    # 8.3 short names for Windows-semantics clients (fs/mangle.py), Samba's "mangled names": "illegal" (Samba
    # 4.17's default) answers FileAlternateNameInformation and opens a file by its short name; "yes" also
    # fills the ShortName of FileBoth/FileIdBothDirectoryInformation listings; "no" has no short names.
    mangled_names: str = "illegal"
    sync_always: bool = False  # fdatasync every WRITE before answering
    # Oplocks and leases (Samba's "oplocks"): clients may cache reads, writes and handles. A change made outside
    # SMB breaks them where the kernel change feed covers the share (else clients get read caching only);
    # false: nothing is cached, for shares whose files change outside SMB all the time (docs/oplocks.md).
    oplocks: bool = True
    # Directory leases (R, RH on SMB 3.x; Samba 4.22's "smb3 directory leases"): clients cache a directory's
    # listing and handle until a create, delete, rename or attribute change inside it (by any client, or a
    # local process through the kernel change feed) breaks the lease. Needs oplocks; docs/oplocks.md has the
    # measurement behind the default.
    directory_leases: bool = True
    encryption: str = ""  # off | desired | required; empty: the server's setting
    # Placeholder files (docs/hsm.md): "" (off), "directory" or "s3"; the provider's id, written into every mark
    # (default: the share name); where content lives; when `smbsrv hsm release --policy` makes placeholders.
    hsm_provider: str = ""
    hsm_provider_id: str = ""
    hsm_directory: str = ""
    hsm_s3_endpoint: str = ""
    hsm_s3_bucket: str = ""
    hsm_s3_region: str = ""
    hsm_s3_prefix: str = ""
    hsm_s3_credentials_file: str = ""
    # A READ of a placeholder larger than this is answered from a ranged fetch while the rest hydrates.
    hsm_range_first_bytes: int = 16 * 1024 * 1024
    hsm_release_after_days: int = 0  # 0: the policy releases no file by age
    hsm_release_min_bytes: int = 0
    # Local processes (and NFS) reading placeholders hydrate them through fanotify FAN_PRE_ACCESS (Linux 6.14+).
    hsm_fanotify: bool = False

    @property
    def hsm_id(self) -> str:
        return self.hsm_provider_id or self.name


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, ...] = ("0.0.0.0",)
    port: int = DEFAULT_PORT
    server_name: str = "SMBSRV"
    users_file: str = "var/users"
    log_level: str = "INFO"
    guest_account: str = "nobody"
    signing: str = "required"  # off | desired | required (as current Windows does)
    # off: no cipher is negotiated; desired: clients that ask (smbclient -e, cifs.ko seal) get encryption;
    # required: every session is encrypted and clients that cannot encrypt are refused.
    encryption: str = "desired"
    max_credits: int = 8192
    max_io_size: int = 8 * 1024 * 1024
    # A WRITE is answered once its data is in the page cache, so a smaller write unit shortens the wait between
    # a request's last byte and its answer and keeps more requests in flight within the client's window
    # (smbclient puts 1 GiB ~1.15x faster with 4 MiB than with 8 MiB; see docs/performance.md). 4 MiB is also
    # cifs.ko's default wsize. Capped by max_io_size.
    max_write_size: int = 4 * 1024 * 1024

    @property
    def write_size_limit(self) -> int:
        return min(self.max_write_size, self.max_io_size)
    posix: bool = True
    # Multichannel ([MS-SMB2] IsMultiChannelCapable): announce SMB2_GLOBAL_CAP_MULTI_CHANNEL on 3.x, accept
    # session binding and answer FSCTL_QUERY_NETWORK_INTERFACE_INFO; Samba's "server multi channel support",
    # on by default as in Samba 4.17 on Linux.
    multi_channel: bool = True
    # Server state outside the shares (large client-set reparse buffers).
    state_dir: str = "var/state"
    # Limits that keep a flood of clients or requests from exhausting the server.
    max_connections: int = 1024
    max_sessions_per_connection: int = 32
    max_tree_connects_per_session: int = 256
    max_opens_per_session: int = 16384
    # Opens one SMB user may hold over all its sessions and connections; 0: a quarter of the process's descriptor
    # limit (ServerState.max_opens_per_user says why).
    max_opens_per_user: int = 0
    max_async_requests_per_connection: int = 512
    max_compound_requests: int = 64
    # A client must finish NEGOTIATE and SESSION_SETUP within this time, and send each message's body within
    # message_timeout_s once its length arrived; slow or silent clients are dropped.
    handshake_timeout_s: int = 30
    message_timeout_s: int = 120
    # Seconds a client has to acknowledge an oplock or lease break before the server takes it as broken to
    # none and lets the waiting open go on ([MS-SMB2] 3.3.2.5, 3.3.2.6; Windows waits 35 s).
    oplock_break_timeout_s: int = 35
    # The control socket `smbsrv status` and `smbsrv reload` talk to (empty: control.sock in state_dir); only
    # root, the server's own user and members of control_group may use it.
    control_socket: str = ""
    control_group: str = ""
    # Prometheus metrics over HTTP (off unless `metrics = true`); port 0 picks a free port and logs it.
    metrics: bool = False
    metrics_listen: str = "127.0.0.1"
    metrics_port: int = 9445
    # Audit log of create/delete/rename/write per user (empty: off).
    audit_log: str = ""
    shares: tuple[ShareConfig, ...] = ()

    @property
    def control_socket_path(self) -> str:
        return os.path.abspath(self.control_socket or os.path.join(self.state_dir, "control.sock"))


_ALLOWED_SIGNING = ("off", "desired", "required")
_ALLOWED_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "TRACE")


def _check_type(key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) and expected is int:
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise ConfigError(f"{key}: expected {names}, got {value!r}")


def _typed_fields(cls: type, table: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check `table` against the dataclass fields of `cls`; convert lists to tuples."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    values: dict[str, Any] = {}
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}{key}: unknown key")
        hint = str(hints[key])
        qualified = f"{where}{key}"
        if hint.startswith("tuple"):
            if isinstance(value, str):
                value = [value]
            _check_type(qualified, value, list)
            for item in value:
                _check_type(qualified, item, str)
            value = tuple(value)
        elif hint == "bool":
            _check_type(qualified, value, bool)
        elif hint == "int":
            _check_type(qualified, value, int)
        elif hint == "str":
            _check_type(qualified, value, str)
        values[key] = value
    return values


def _share_from_table(name: str, table: dict[str, Any]) -> ShareConfig:
    where = f"shares.{name}."
    if not isinstance(table, dict):
        raise ConfigError(f"shares.{name}: expected a table")
    values = _typed_fields(ShareConfig, table, where, skip=("name",))
    if "path" not in values:
        raise ConfigError(f"{where}path: missing")
    for mask_key in ("create_mask", "directory_mask"):
        if mask_key in values and not 0 <= values[mask_key] <= 0o7777:
            raise ConfigError(f"{where}{mask_key}: must be between 0 and 0o7777, got {values[mask_key]!r}")
    return ShareConfig(name=name, **values)


def share_with_options(share: ShareConfig, options: dict[str, Any]) -> ShareConfig:
    """`share` (a command line's NAME=PATH) with the settings `options`, checked as a config file's would be."""
    return _share_from_table(share.name, {**options, "path": share.path})


def validate_share_name(name: str) -> None:
    if not name or len(name) > 80 or any(c in name for c in '\\/:*?"<>|') or name.upper() == "IPC$":
        raise ConfigError(f"shares.{name}: invalid share name")


def parse_config(data: dict[str, Any]) -> ServerConfig:
    server_table = dict(data)
    shares_table = server_table.pop("shares", {})
    server_values = _typed_fields(ServerConfig, server_table.pop("server", {}), "server.", skip=("shares",))
    for key in server_table:
        raise ConfigError(f"{key}: unknown key")
    if not isinstance(shares_table, dict):
        raise ConfigError("shares: expected a table of shares")
    shares = []
    for name, table in shares_table.items():
        validate_share_name(name)
        shares.append(_share_from_table(name, table))
    config = ServerConfig(**server_values, shares=tuple(shares))
    check_values(config)
    return config


def check_values(config: ServerConfig) -> None:
    if not 0 <= config.port <= 65535:
        raise ConfigError(f"server.port: must be between 0 and 65535, got {config.port}")
    if config.encryption not in _ALLOWED_SIGNING:
        raise ConfigError(f"server.encryption: must be one of {', '.join(_ALLOWED_SIGNING)}, "
                          f"got {config.encryption!r}")
    for share in config.shares:
        if share.special_files not in ("nfs", "wsl"):
            raise ConfigError(f"shares.{share.name}.special_files: must be nfs or wsl, got {share.special_files!r}")
        if share.mangled_names not in ("yes", "no", "illegal"):
            raise ConfigError(f"shares.{share.name}.mangled_names: must be yes, no or illegal, "
                              f"got {share.mangled_names!r}")
        _check_hsm(share)
        if share.encryption not in ("",) + _ALLOWED_SIGNING:
            raise ConfigError(f"shares.{share.name}.encryption: must be one of {', '.join(_ALLOWED_SIGNING)}, "
                              f"got {share.encryption!r}")
    if config.signing not in _ALLOWED_SIGNING:
        raise ConfigError(f"server.signing: must be one of {', '.join(_ALLOWED_SIGNING)}, got {config.signing!r}")
    if config.log_level.upper() not in _ALLOWED_LOG_LEVELS:
        raise ConfigError(f"server.log_level: must be one of {', '.join(_ALLOWED_LOG_LEVELS)}, "
                          f"got {config.log_level!r}")
    if not 1 <= config.max_credits <= 8192:
        raise ConfigError(f"server.max_credits: must be between 1 and 8192, got {config.max_credits}")
    for key in ("max_connections", "max_sessions_per_connection", "max_tree_connects_per_session",
                "max_opens_per_session", "max_async_requests_per_connection", "max_compound_requests",
                "handshake_timeout_s", "message_timeout_s"):
        if getattr(config, key) < 1:
            raise ConfigError(f"server.{key}: must be at least 1, got {getattr(config, key)}")
    if config.max_opens_per_user < 0:
        raise ConfigError(f"server.max_opens_per_user: must be 0 (derived) or more, "
                          f"got {config.max_opens_per_user}")
    if not 65536 <= config.max_io_size <= 8 * 1024 * 1024:
        raise ConfigError(f"server.max_io_size: must be between 65536 and 8388608, got {config.max_io_size}")
    if not 65536 <= config.max_write_size <= 8 * 1024 * 1024:
        raise ConfigError(f"server.max_write_size: must be between 65536 and 8388608, got {config.max_write_size}")
    if not 0 <= config.metrics_port <= 65535:
        raise ConfigError(f"server.metrics_port: must be between 0 and 65535, got {config.metrics_port}")
    if not config.metrics_listen:
        raise ConfigError("server.metrics_listen: must be an address, got ''")
    # A UNIX socket path is at most 107 bytes (sun_path).
    if len(os.fsencode(config.control_socket_path)) > 107:
        raise ConfigError(f"server.control_socket: path longer than 107 bytes: {config.control_socket_path!r}")
    if config.control_group:
        import grp

        try:
            grp.getgrnam(config.control_group)
        except KeyError:
            raise ConfigError(f"server.control_group: no such group {config.control_group!r}") from None
    seen: set[str] = set()
    for share in config.shares:
        if share.name.lower() in seen:
            raise ConfigError(f"shares.{share.name}: defined twice")
        seen.add(share.name.lower())


def _check_hsm(share: ShareConfig) -> None:
    where = f"shares.{share.name}."
    if share.hsm_provider not in ("", "directory", "s3"):
        raise ConfigError(f"{where}hsm_provider: must be directory or s3 (or empty), got {share.hsm_provider!r}")
    for key in ("hsm_range_first_bytes", "hsm_release_after_days", "hsm_release_min_bytes"):
        if getattr(share, key) < 0:
            raise ConfigError(f"{where}{key}: must be at least 0, got {getattr(share, key)}")
    if not share.hsm_provider:
        for key in ("hsm_directory", "hsm_s3_bucket", "hsm_s3_endpoint", "hsm_fanotify"):
            if getattr(share, key):
                raise ConfigError(f"{where}{key}: needs hsm_provider")
        return
    if any(c in share.hsm_id for c in "/\\\0") or len(share.hsm_id) > 64:
        raise ConfigError(f"{where}hsm_provider_id: at most 64 characters, no slashes, got {share.hsm_id!r}")
    if share.hsm_provider == "directory":
        if not share.hsm_directory:
            raise ConfigError(f"{where}hsm_directory: missing (hsm_provider = \"directory\")")
        if os.path.abspath(share.hsm_directory).startswith(os.path.abspath(share.path) + os.sep):
            raise ConfigError(f"{where}hsm_directory: must lie outside the share, got {share.hsm_directory!r}")
    if share.hsm_provider == "s3":
        if not share.hsm_s3_bucket:
            raise ConfigError(f"{where}hsm_s3_bucket: missing (hsm_provider = \"s3\")")
        if share.hsm_s3_endpoint and not share.hsm_s3_endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}hsm_s3_endpoint: must be an http:// or https:// URL, "
                              f"got {share.hsm_s3_endpoint!r}")


def load_config(path: str) -> ServerConfig:
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # Relative paths (share paths, users_file, state_dir) are taken from the server's working directory.
    return parse_config(data)


def check_share_paths(config: ServerConfig) -> None:
    for share in config.shares:
        if not os.path.isdir(share.path):
            raise ConfigError(f"shares.{share.name}.path: {share.path!r} is not a directory")


def with_overrides(config: ServerConfig, **changes: Any) -> ServerConfig:
    return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_PORT",
    "ConfigError",
    "ServerConfig",
    "ShareConfig",
    "check_share_paths",
    "check_values",
    "load_config",
    "parse_config",
    "share_with_options",
    "with_overrides",
]
