#!/bin/sh
# Entrypoint of the smbsrv container image: first-start setup, then the server as PID 1 (so `docker stop`'s
# SIGTERM and `docker kill -s HUP`'s reload reach it directly).
#
#   SMBSRV_CONFIG          the config file (default /etc/smbsrv/smbsrv.toml; the image's default is copied there
#                          when it does not exist)
#   SMBSRV_USER            an SMB user to create (or whose password to set) from SMBSRV_PASSWORD
#   SMBSRV_PASSWORD        its password (read from the environment, never put on a command line)
#   SMBSRV_UNIX_USER       the Unix account SMB users act as (default smbuser, uid/gid 1000 in the image)
#   SMBSRV_UID, SMBSRV_GID change smbuser's uid/gid to match the owner of the share volume
#
# Arguments are passed to `smbsrv serve` (e.g. --log-level DEBUG).
set -eu

config="${SMBSRV_CONFIG:-/etc/smbsrv/smbsrv.toml}"
unix_user="${SMBSRV_UNIX_USER:-smbuser}"

if [ ! -e "$config" ]; then
    install -m 0644 "${SMBSRV_DEFAULT_CONFIG:-/usr/share/smbsrv/smbsrv.toml}" "$config"
    echo "smbsrv-entrypoint: created $config from the image's default" >&2
fi

if [ -n "${SMBSRV_GID:-}" ] && [ "$(id -g "$unix_user")" != "$SMBSRV_GID" ]; then
    groupmod --gid "$SMBSRV_GID" "$(id -gn "$unix_user")"
fi
if [ -n "${SMBSRV_UID:-}" ] && [ "$(id -u "$unix_user")" != "$SMBSRV_UID" ]; then
    usermod --uid "$SMBSRV_UID" "$unix_user"
fi

# The config names the users file and the state directory; a config that does not validate stops here, with
# the exact key named.
smbsrv check-config "$config" >&2
paths=$(python3 -c 'import sys; from smbsrv.config import load_config
c = load_config(sys.argv[1]); print(c.users_file); print(c.state_dir)' "$config")
users_file=$(printf '%s\n' "$paths" | sed -n 1p)
state_dir=$(printf '%s\n' "$paths" | sed -n 2p)
mkdir -p "$state_dir"

if [ -n "${SMBSRV_USER:-}" ]; then
    if [ -z "${SMBSRV_PASSWORD:-}" ]; then
        echo "smbsrv-entrypoint: SMBSRV_USER is set but SMBSRV_PASSWORD is empty" >&2
        exit 2
    fi
    if smbsrv user list --users-file "$users_file" | cut -f1 | grep -qxF "$SMBSRV_USER"; then
        printf '%s\n' "$SMBSRV_PASSWORD" | smbsrv user passwd --users-file "$users_file" --password-stdin "$SMBSRV_USER" >&2
    else
        printf '%s\n' "$SMBSRV_PASSWORD" | smbsrv user add --users-file "$users_file" --password-stdin \
            --unix-user "$unix_user" "$SMBSRV_USER" >&2
    fi
fi
unset SMBSRV_PASSWORD

exec smbsrv serve -c "$config" "$@"
