"""What `smbsrv serve` does for placeholder shares before it listens: check that marks can be kept, and
start the fanotify listener where a share asks for it. A problem is a ConfigError: the server does not
start, and the message names the share and the reason."""

from __future__ import annotations

import os

from smbsrv.config import ConfigError, ServerConfig
from smbsrv.hsm import access, fanotify
from smbsrv.hsm import mark as marks


def start(config: ServerConfig) -> fanotify.PreContentListener | None:
    local: list[tuple[str, str, object]] = []
    for share in config.shares:
        if not share.hsm_provider:
            continue
        fd = os.open(share.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            problem = marks.probe(fd)
        finally:
            os.close(fd)
        if problem is not None:
            raise ConfigError(f"shares.{share.name}.hsm_provider: {problem} (run as root, on a file system "
                              "with trusted.* xattrs)")
        try:
            provider = access.provider_for(share, config.state_dir)
        except ImportError as exc:
            raise ConfigError(f"shares.{share.name}.hsm_provider: {exc} (pip install 'smbsrv[hsm-s3]')") from None
        if share.hsm_fanotify:
            local.append((share.path, share.hsm_id, provider))
    try:
        return fanotify.start(local, access.hydrator, config.state_dir)  # type: ignore[arg-type]
    except fanotify.FanotifyUnsupported as exc:
        raise ConfigError(f"hsm_fanotify: {exc.strerror}") from None
