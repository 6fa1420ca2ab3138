# Metadata benchmark through cifs.ko, run as /test.sh in the guest by benchmarks/kernel_meta.py (see there for
# the host side: both servers, the CPU readings and the report). Not a test: it never fails on a number.
#
# One boot mounts every server in SERVERS at /mnt/<name> with the same options and runs, for each mount
# variant, ROUNDS rounds; in each round every server runs the same steps, the servers in turn (the order
# alternates from round to round). The steps, each timed inside the guest by `kmeta` (benchmarks/kernel_meta.c):
#
#   create       FLAT_COUNT empty files, creat()+close() each
#   ls_cold      `ls -l` of that directory after umount, drop_caches and mount
#   ls_warm      the same again at once
#   stat_cold    stat() of every file by name, after umount, drop_caches and mount
#   stat_warm    the same again at once
#   untar        tar -x of a tree of TREE_D1 x TREE_D2 directories of TREE_FILES small files each
#   walk_cold    readdir + lstat of every entry of that tree (what `git status` does), after a remount
#   walk_warm    the same again at once
#   rm_tree      rm -rf of the tree
#   rm_flat      rm -rf of the FLAT_COUNT files
#
# Around each step the guest prints "BENCH-BEGIN <variant> <round> <server> <step>", waits MARK_WAIT seconds
# (the host reads the servers' CPU when the line arrives), runs the step, waits SETTLE seconds after the steps
# that close files (cifs.ko sends deferred CLOSEs closetimeo, 1 s, after close(2); they belong to the step) and
# prints
# "BENCH-END <variant> <round> <server> <step> <ns> <count>".
#
# Settings (from /run-env.sh): SERVER_IP; SERVERS "name:port ..."; SMB_SHARE SMB_USER SMB_PASS (the same on every
# server); VARIANTS "name=extra,mount,options ..." (an empty extra is the defaults); ROUNDS FLAT_COUNT TREE_D1
# TREE_D2 TREE_FILES SETTLE MARK_WAIT.

. /lib/smbtest.sh

ROUNDS=${ROUNDS:-3}
FLAT_COUNT=${FLAT_COUNT:-2000}
TREE_D1=${TREE_D1:-10}
TREE_D2=${TREE_D2:-10}
TREE_FILES=${TREE_FILES:-20}
SETTLE=${SETTLE:-1.5}
MARK_WAIT=${MARK_WAIT:-0.3}
VARIANTS=${VARIANTS:-default=}

mount_server() {  # NAME PORT EXTRA
    mkdir -p "/mnt/$1"
    _opts="vers=3.1.1,ip=$SERVER_IP,port=$2,username=$SMB_USER,password=$SMB_PASS"
    [ -n "$3" ] && _opts="$_opts,$3"
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "/mnt/$1" -o "$_opts"
}

remount_cold() {  # NAME PORT EXTRA
    umount "/mnt/$1"
    drop_caches
    mount_server "$1" "$2" "$3"
}

# measure VARIANT ROUND SERVER STEP COMMAND...: one timed step; returns the command's status.
measure() {
    _tag="$1 $2 $3 $4"
    _step=$4
    shift 4
    echo "BENCH-BEGIN $_tag"
    sleep "$MARK_WAIT"
    _out=$("$@" 2>/tmp/bench.err)
    _rc=$?
    # Only steps that close files they opened leave deferred CLOSEs behind; the others end with their last
    # reply, and waiting after them would let the attribute cache (actimeo, 1 s by default) expire before the
    # warm run that follows.
    case "$_step" in
        create|untar|rm_*) sleep "$SETTLE" ;;
    esac
    if [ "$_rc" -ne 0 ]; then
        echo "FAIL bench/$(echo "$_tag" | tr ' ' /) rc=$_rc"
        sed 's/^/| /' /tmp/bench.err | tail -n 20
        echo "BENCH-END $_tag -1 -1"
        return 1
    fi
    # "NS <ns> COUNT <n>"
    set -- $_out
    echo "BENCH-END $_tag $2 $4"
    return 0
}

# round_for VARIANT ROUND NAME PORT EXTRA: every step on one server; stops at the first failure.
round_for() {
    _v=$1; _r=$2; _s=$3; _p=$4; _x=$5
    _dir="/mnt/$_s/bench-$_v-$_r"
    mkdir "$_dir" "$_dir/flat" "$_dir/tree" || return 1
    measure "$_v" "$_r" "$_s" create kmeta create "$_dir/flat" "$FLAT_COUNT" || return 1
    remount_cold "$_s" "$_p" "$_x" || return 1
    measure "$_v" "$_r" "$_s" ls_cold kmeta time ls -l "$_dir/flat" || return 1
    measure "$_v" "$_r" "$_s" ls_warm kmeta time ls -l "$_dir/flat" || return 1
    remount_cold "$_s" "$_p" "$_x" || return 1
    measure "$_v" "$_r" "$_s" stat_cold kmeta stat "$_dir/flat" "$FLAT_COUNT" || return 1
    measure "$_v" "$_r" "$_s" stat_warm kmeta stat "$_dir/flat" "$FLAT_COUNT" || return 1
    measure "$_v" "$_r" "$_s" untar kmeta time tar -xf /tmp/tree.tar -C "$_dir/tree" || return 1
    remount_cold "$_s" "$_p" "$_x" || return 1
    measure "$_v" "$_r" "$_s" walk_cold kmeta walk "$_dir/tree" || return 1
    measure "$_v" "$_r" "$_s" walk_warm kmeta walk "$_dir/tree" || return 1
    measure "$_v" "$_r" "$_s" rm_tree kmeta time rm -rf "$_dir/tree" || return 1
    measure "$_v" "$_r" "$_s" rm_flat kmeta time rm -rf "$_dir/flat" || return 1
    rmdir "$_dir"
}

# The untar source, on the guest's tmpfs: made once, the same bytes for every server.
kmeta mktree /tmp/src "$TREE_D1" "$TREE_D2" "$TREE_FILES" >/dev/null || exit 1
tar -cf /tmp/tree.tar -C /tmp/src . || exit 1
rm -rf /tmp/src
echo "BENCH-TREE $(tar -tf /tmp/tree.tar | wc -l) entries, $(wc -c </tmp/tree.tar) bytes"

failures=0
for variant in $VARIANTS; do
    vname=${variant%%=*}
    vopts=${variant#*=}
    for server in $SERVERS; do
        mount_server "${server%%:*}" "${server#*:}" "$vopts" || { echo "FAIL bench/$vname/mount/${server%%:*}"; exit 1; }
    done
    echo "BENCH-MOUNTS $vname $(grep ' cifs ' /proc/mounts | tr '\n' '|')"
    round=1
    while [ "$round" -le "$ROUNDS" ]; do
        # Alternate the order: odd rounds as given, even rounds reversed.
        order=$SERVERS
        if [ $((round % 2)) -eq 0 ]; then
            order=""
            for server in $SERVERS; do order="$server $order"; done
        fi
        for server in $order; do
            if round_for "$vname" "$round" "${server%%:*}" "${server#*:}" "$vopts"; then
                echo "PASS bench/$vname/$round/${server%%:*} 0"
            else
                echo "FAIL bench/$vname/$round/${server%%:*} 0"
                failures=$((failures + 1))
            fi
        done
        round=$((round + 1))
    done
    for server in $SERVERS; do
        umount "/mnt/${server%%:*}" || umount -l "/mnt/${server%%:*}"
    done
done
echo "SMBTEST-SUITE-DONE"
[ "$failures" -eq 0 ]
