#!/bin/sh
# Runs a script in the cifs.ko guest; a thin wrapper around `python -m tests.kernel.vm` (see its docstring).
# Examples:
#   scripts/vm/run.sh --server samba tests/kernel/guest/cifs_suite.sh
#   scripts/vm/run.sh --port 4450 --env SMB_USER=u --env SMB_PASS=p tests/kernel/guest/cifs_suite.sh
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
# PYTHONPATH instead of cd, so that relative paths in the arguments keep working.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m tests.kernel.vm "$@"
