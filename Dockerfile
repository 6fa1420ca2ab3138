# smbsrv container image: Debian 12 slim with Debian's Python 3.11, smbsrv in a venv.
#
#   docker build -t smbsrv .
#   docker run -d --name smbsrv -p 445:445 \
#       --cap-drop ALL --cap-add NET_BIND_SERVICE --cap-add SETUID --cap-add SETGID \
#       --cap-add DAC_OVERRIDE --cap-add DAC_READ_SEARCH --cap-add CHOWN --cap-add FOWNER \
#       --security-opt no-new-privileges \
#       -v smbsrv-etc:/etc/smbsrv -v smbsrv-state:/var/lib/smbsrv -v /srv/data:/srv/smb/share \
#       -e SMBSRV_USER=alice -e SMBSRV_PASSWORD=... -e SMBSRV_UID=$(id -u) -e SMBSRV_GID=$(id -g) smbsrv
#
# Capabilities: the server process is root inside the container only to act as each session's Unix account
# (per-thread setfsuid/setfsgid/setgroups: SETUID, SETGID) and to bind port 445 (NET_BIND_SERVICE); the
# server's own I/O and share I/O the SMB access check allowed need DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER and
# CHOWN (conf/smbsrv.service explains each). Everything else is dropped; docker's default set lacks
# DAC_READ_SEARCH, hence the explicit list. Clients' files are created as the Unix account (smbuser, uid 1000,
# or SMBSRV_UID/SMBSRV_GID), so the share volume keeps host-side ownership.
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /src/
COPY smbsrv /src/smbsrv
RUN python3 -m venv /opt/smbsrv \
    && /opt/smbsrv/bin/pip install --no-cache-dir --disable-pip-version-check '/src[fast,metrics]' \
    && rm -rf /src

COPY conf/container/smbsrv.toml /usr/share/smbsrv/smbsrv.toml
COPY conf/container/entrypoint.sh /usr/local/bin/smbsrv-entrypoint
RUN useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin smbuser \
    && mkdir -p /etc/smbsrv /var/lib/smbsrv /srv/smb/share \
    && chown smbuser:smbuser /srv/smb/share \
    && chmod 0750 /etc/smbsrv /var/lib/smbsrv

ENV PATH=/opt/smbsrv/bin:$PATH \
    SMBSRV_CONFIG=/etc/smbsrv/smbsrv.toml \
    PYTHONDONTWRITEBYTECODE=1

# Config and users file, server state (control socket, large reparse buffers), shares.
VOLUME ["/etc/smbsrv", "/var/lib/smbsrv", "/srv/smb"]
EXPOSE 445
# Healthy = the daemon answers on its control socket (it is up and its event loop is serving).
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 CMD ["smbsrv", "status", "--json"]
ENTRYPOINT ["smbsrv-entrypoint"]
