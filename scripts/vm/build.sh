#!/bin/sh
# Builds (or reuses) the qemu guest image for the cifs.ko kernel tests, installing missing host tools first.
# The kernel and busybox are downloaded with apt-get download into .cache/vm, never installed on the host.
# Usage: scripts/vm/build.sh [--cache-dir DIR]      (see tests/kernel/image.py)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
# PYTHONPATH instead of cd, so that relative paths in the arguments keep working.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m tests.kernel.image "$@"
