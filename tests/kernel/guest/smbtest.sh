# Helpers sourced by the guest test scripts (installed as /lib/smbtest.sh by tests/kernel/vm.py).
#
# Protocol with the host (tests/kernel/vm.py parses it from the serial console):
#   PASS <step> <seconds>     FAIL <step> <seconds>
# followed, for a failure, by up to STEP_LOG_LINES lines of the step's output prefixed with "| ".
# Step names have no spaces. STEP_PREFIX (e.g. "3.1.1/strict/") is put in front of every name.

STEP_PREFIX=${STEP_PREFIX:-}
STEP_LOG_LINES=${STEP_LOG_LINES:-30}
STEP_FAILURES=0

uptime_s() {
    cut -d' ' -f1 /proc/uptime
}

# step NAME COMMAND [ARGS...]: runs the command in a subshell with "set -e", reports PASS or FAIL.
step() {
    _name="$STEP_PREFIX$1"
    shift
    _log=/tmp/step.log
    _start=$(uptime_s)
    # Lets the host tell which step a kernel message belongs to.
    echo "SMBTEST-STEP $_name" >/dev/kmsg
    # Not inside "if": the shell would then ignore set -e for the whole subshell.
    ( set -e; "$@" ) >"$_log" 2>&1
    _rc=$?
    if [ "$_rc" -eq 0 ]; then
        echo "PASS $_name $(awk -v a="$_start" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }')"
    else
        echo "FAIL $_name $(awk -v a="$_start" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }') rc=$_rc"
        tail -n "$STEP_LOG_LINES" "$_log" | sed 's/^/| /'
        STEP_FAILURES=$((STEP_FAILURES + 1))
    fi
}

# fail MESSAGE: ends the current step with a message (steps run under set -e in a subshell).
fail() {
    echo "check failed: $*"
    exit 1
}

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}

md5_of() {
    md5sum "$1" | cut -d' ' -f1
}

# Marks a stretch of the kernel log in which cifs errors are expected (a failing mount logs them). The host
# ignores "CIFS: VFS" lines between these markers only if they match its list of expected messages.
expect_kernel_errors_begin() {
    echo "SMBTEST-EXPECTED-ERRORS-BEGIN $1" >/dev/kmsg
}

expect_kernel_errors_end() {
    echo "SMBTEST-EXPECTED-ERRORS-END $1" >/dev/kmsg
}

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# sweep_tmpfs: the POSIX sweep (tests/kernel/posixcheck.c) on the guest's own tmpfs, as SWEEP_UID:SWEEP_GID, into
# /tmp/tmpfs.out: what Linux itself answers, the reference both cifs.ko sweeps compare with.
sweep_tmpfs() {
    mkdir /tmp/sweep
    chown "$SWEEP_UID:$SWEEP_GID" /tmp/sweep
    posixcheck /tmp/sweep "$SWEEP_UID" "$SWEEP_GID" >/tmp/tmpfs.out
    rm -rf /tmp/sweep
}
