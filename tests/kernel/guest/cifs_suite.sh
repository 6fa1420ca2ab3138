# cifs.ko file-system suite, run as /test.sh in the guest (see tests/kernel/vm.py).
#
# For every dialect in SMB_VERSIONS and cache mode in SMB_CACHES it mounts the share and runs the steps below,
# reporting them as "<vers>/<cache>/<step>". With NEGATIVE_TESTS=1 it also checks that a wrong password and a
# missing share make mount fail (steps "negative/...").
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_SHARE SMB_USER SMB_PASS BIGDIR_NAME BIGDIR_COUNT,
# optional SMB_VERSIONS ("3.1.1 3.0 2.1"), SMB_CACHES ("strict none"), BIG_FILE_MIB (64),
# BIG_FILE_CACHES (cache modes that run the big-file steps; default: all), NEGATIVE_TESTS (1).
#
# The share must hold $BIGDIR_NAME with $BIGDIR_COUNT files named as bigdir_names prints them (the host makes
# them, tests/kernel/servers.py). Every step leaves the share as it found it.

. /lib/smbtest.sh

SMB_VERSIONS=${SMB_VERSIONS:-"3.1.1 3.0 2.1"}
SMB_CACHES=${SMB_CACHES:-"strict none"}
BIG_FILE_MIB=${BIG_FILE_MIB:-64}
BIG_FILE_CACHES=${BIG_FILE_CACHES:-$SMB_CACHES}
NEGATIVE_TESTS=${NEGATIVE_TESTS:-1}
MNT=/mnt
MNT2=/mnt2
# A fixed time, in UTC (the guest has no time zone): 2001-02-03 04:05:06.
UTIME_TEXT="2001-02-03 04:05:06"
UTIME_EPOCH=981173106

# mount_cifs MOUNTPOINT SHARE PASSWORD EXTRA_OPTIONS: busybox mount (there is no mount.cifs) hands the
# options to the kernel as they are; ip= saves it a name lookup.
mount_cifs() {
    mount -t cifs "//$SERVER_IP/$2" "$1" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$3,$4"
}

# mount_share VERS CACHE [SHARE] [PASSWORD]
mount_share() {
    mount_cifs "$MNT" "${3:-$SMB_SHARE}" "${4:-$SMB_PASS}" "vers=$1,cache=$2"
}

is_mounted() {
    grep -q " $MNT cifs " /proc/mounts
}

bigdir_names() {
    awk -v n="$BIGDIR_COUNT" 'BEGIN { for (i = 0; i < n; i++)
        printf "entry-%04d-with-a-longer-name-to-fill-directory-buffers.dat\n", i }'
}

# ---- data made once per boot in the guest's tmpfs ----

make_sources() {
    dd if=/dev/urandom of=/tmp/src1 bs=1024 count=1024 2>/dev/null
    dd if=/dev/urandom of=/tmp/srcbig bs=1048576 count="$BIG_FILE_MIB" 2>/dev/null
    cat /tmp/src1 /tmp/src1 >/tmp/src1x2
    SRC1_MD5=$(md5_of /tmp/src1)
    SRC1X2_MD5=$(md5_of /tmp/src1x2)
    SRCBIG_MD5=$(md5_of /tmp/srcbig)
    # A small tree for cp -a / diff -r / find: nested directories, empty files and directories, odd names.
    mkdir -p /tmp/tree/a/b/c /tmp/tree/empty-dir "/tmp/tree/with space"
    echo "top" >/tmp/tree/top.txt
    : >/tmp/tree/a/empty-file
    head -c 100000 /tmp/src1 >/tmp/tree/a/b/hundred-k
    echo "deep" >/tmp/tree/a/b/c/deep.txt
    echo "spaced" >"/tmp/tree/with space/file name.txt"
    for i in 1 2 3 4 5 6 7 8 9 10; do echo "file $i" >"/tmp/tree/a/f$i"; done
    TREE_LIST=$(cd /tmp/tree && find . | sort | md5sum | cut -d' ' -f1)
}

# ---- steps (each runs in a subshell under set -e; W is the per-mount work directory) ----

t_mount() {
    mount_share "$VERS" "$CACHE"
    is_mounted || fail "not in /proc/mounts"
    grep " $MNT cifs " /proc/mounts
    grep -q "vers=$VERS" /proc/mounts || fail "vers=$VERS not in /proc/mounts"
}

t_df() {
    df -k "$MNT"
    blocks=$(df -k "$MNT" | awk 'NR == 2 { print $2 }')
    [ "${blocks:-0}" -gt 0 ] || fail "df reports $blocks blocks"
}

t_mkdir_work() {
    mkdir "$W"
    [ -d "$W" ] || fail "work dir missing"
}

t_ls_bigdir() {
    count=$(ls -la "$MNT/$BIGDIR_NAME" | tail -n +2 | grep -vc ' \.\.\?$')
    expect_eq "entries in ls -la" "$count" "$BIGDIR_COUNT"
    expect_eq "names" "$(ls "$MNT/$BIGDIR_NAME" | md5sum)" "$(bigdir_names | md5sum)"
    expect_eq "content of entry 1234" "$(cat "$MNT/$BIGDIR_NAME/$(bigdir_names | sed -n 1235p)")" "1234"
}

t_touch_stat() {
    touch "$W/empty"
    stat "$W/empty"
    [ -f "$W/empty" ] || fail "not a regular file"
    expect_eq "size" "$(stat -c %s "$W/empty")" 0
    stat -c '%F' "$MNT" | grep -q directory || fail "mount root is not a directory"
    mtime_before=$(stat -c %Y "$W/empty")
    now=$(date +%s)
    # The guest clock follows the host's; allow for slow emulation.
    [ $((now - mtime_before)) -lt 300 ] && [ $((mtime_before - now)) -lt 300 ] \
        || fail "mtime $mtime_before far from now $now"
}

t_write_read_1m() {
    cp /tmp/src1 "$W/f1"
    drop_caches
    expect_eq "size" "$(stat -c %s "$W/f1")" 1048576
    expect_eq "md5" "$(md5_of "$W/f1")" "$SRC1_MD5"
}

t_append() {
    cat /tmp/src1 >>"$W/f1"
    drop_caches
    expect_eq "size" "$(stat -c %s "$W/f1")" 2097152
    expect_eq "md5" "$(md5_of "$W/f1")" "$SRC1X2_MD5"
}

t_write_read_big() {
    dd if=/tmp/srcbig of="$W/big" bs=1048576 2>&1
    drop_caches
    expect_eq "size" "$(stat -c %s "$W/big")" $((BIG_FILE_MIB * 1048576))
    expect_eq "md5" "$(md5_of "$W/big")" "$SRCBIG_MD5"
}

t_overwrite_middle() {
    # Rewrite 4 KiB in the middle of the 2 MiB file without truncating it.
    printf 'XXXX%.0s' $(seq 1024) >/tmp/patch4k
    dd if=/tmp/patch4k of="$W/f1" bs=4096 seek=100 conv=notrunc 2>/dev/null
    cp /tmp/src1x2 /tmp/expect
    dd if=/tmp/patch4k of=/tmp/expect bs=4096 seek=100 conv=notrunc 2>/dev/null
    drop_caches
    expect_eq "size" "$(stat -c %s "$W/f1")" 2097152
    expect_eq "md5" "$(md5_of "$W/f1")" "$(md5_of /tmp/expect)"
}

t_truncate() {
    truncate -s 1000 "$W/f1"
    drop_caches
    expect_eq "size after shrink" "$(stat -c %s "$W/f1")" 1000
    expect_eq "content after shrink" "$(md5_of "$W/f1")" "$(head -c 1000 /tmp/src1 | md5sum | cut -d' ' -f1)"
    truncate -s 5000 "$W/f1"
    drop_caches
    expect_eq "size after extend" "$(stat -c %s "$W/f1")" 5000
    expect_eq "zero tail" "$(tail -c 4000 "$W/f1" | md5sum)" "$(head -c 4000 /dev/zero | md5sum)"
    : >"$W/f1"
    expect_eq "size after O_TRUNC" "$(stat -c %s "$W/f1")" 0
}

t_mkdir_rmdir() {
    mkdir -p "$W/d1/d2/d3"
    [ -d "$W/d1/d2/d3" ] || fail "mkdir -p"
    echo x >"$W/d1/d2/file"
    if rmdir "$W/d1/d2" 2>/dev/null; then fail "rmdir of a non-empty directory succeeded"; fi
    rm "$W/d1/d2/file"
    rmdir "$W/d1/d2/d3" "$W/d1/d2" "$W/d1"
    [ ! -e "$W/d1" ] || fail "d1 still there"
}

t_rename() {
    echo a >"$W/ra"
    mv "$W/ra" "$W/rb"
    [ ! -e "$W/ra" ] || fail "source still there"
    expect_eq "renamed content" "$(cat "$W/rb")" a
    mkdir "$W/rdir"
    mv "$W/rb" "$W/rdir/rc"
    expect_eq "moved into directory" "$(cat "$W/rdir/rc")" a
    mv "$W/rdir" "$W/rdir2"
    expect_eq "directory renamed" "$(cat "$W/rdir2/rc")" a
    rm -r "$W/rdir2"
}

t_rename_over() {
    echo new >"$W/src"
    echo old >"$W/dst"
    mv "$W/src" "$W/dst"
    [ ! -e "$W/src" ] || fail "source still there"
    expect_eq "replaced content" "$(cat "$W/dst")" new
    expect_eq "one entry left" "$(ls "$W" | grep -c '^dst$\|^src$')" 1
    rm "$W/dst"
}

t_unlink_open() {
    # Without POSIX extensions the server may keep the name visible (delete pending) until the last handle
    # closes, as Windows does; what must hold is that the open descriptor still reads the data and that the
    # name is gone after the close.
    cp /tmp/src1 "$W/open-unlinked"
    exec 3<"$W/open-unlinked"
    rm "$W/open-unlinked"
    expect_eq "read through the open descriptor" "$(md5sum <&3 | cut -d' ' -f1)" "$SRC1_MD5"
    exec 3<&-
    [ ! -e "$W/open-unlinked" ] || fail "name still resolves after the last close"
    if ls "$W" | grep -q open-unlinked; then fail "listed after the last close"; fi
    echo again >"$W/open-unlinked"
    expect_eq "name reusable" "$(cat "$W/open-unlinked")" again
    rm "$W/open-unlinked"
}

t_hardlink() {
    echo one >"$W/h1"
    ln "$W/h1" "$W/h2"
    expect_eq "link count" "$(stat -c %h "$W/h1")" 2
    echo two >>"$W/h2"
    # cifs.ko gives each name its own inode and page cache, so this read is only right if the server breaks
    # the lease taken through h1 when h2 is written.
    expect_eq "shared content" "$(cat "$W/h1" | tr '\n' ' ')" "one two "
    drop_caches
    expect_eq "shared content from the server" "$(cat "$W/h1" | tr '\n' ' ')" "one two "
    rm "$W/h1"
    expect_eq "content after unlinking the first name" "$(cat "$W/h2" | tr '\n' ' ')" "one two "
    expect_eq "link count after unlink" "$(stat -c %h "$W/h2")" 1
}

t_chmod() {
    # Without POSIX extensions cifs.ko maps "no write bit for anyone" to FILE_ATTRIBUTE_READONLY; the other
    # mode bits come from the file_mode/dir_mode mount options and cannot change.
    echo data >"$W/ro"
    chmod a-w "$W/ro"
    stat -c '%A' "$W/ro" | grep -q w && fail "write bits still shown: $(stat -c %A "$W/ro")"
    if (echo more >>"$W/ro") 2>/dev/null; then fail "append to a read-only file succeeded"; fi
    # cifs.ko 6.1 does not record the READONLY it just set in its cached DOS attributes, and it decides what
    # a later chmod must send from that cache, so chmod u+w on the same inode would be dropped as "no change".
    # With a lease it never refreshes that cache, so only a new mount shows what the server stored.
    umount "$MNT"
    mount_share "$VERS" "$CACHE"
    stat -c '%A' "$W/ro" | grep -q w && fail "server lost READONLY: $(stat -c %A "$W/ro")"
    if (echo more >>"$W/ro") 2>/dev/null; then fail "append after remount succeeded"; fi
    chmod u+w "$W/ro"
    stat -c '%A' "$W/ro" | grep -q w || fail "write bit not back: $(stat -c %A "$W/ro")"
    echo more >>"$W/ro"
    expect_eq "content" "$(cat "$W/ro" | tr '\n' ' ')" "data more "
}

t_utimes() {
    echo t >"$W/times"
    touch -d "$UTIME_TEXT" "$W/times"
    drop_caches
    expect_eq "mtime" "$(stat -c %Y "$W/times")" "$UTIME_EPOCH"
    touch -d "$UTIME_TEXT" "$W"
    drop_caches
    expect_eq "directory mtime" "$(stat -c %Y "$W")" "$UTIME_EPOCH"
}

# hold_lock RELEASE_FILE ARGS...: starts locktest in the background and waits until it holds the lock.
hold_lock() {
    release=$1
    shift
    rm -f "$release" /tmp/holder.out
    locktest "$@" >/tmp/holder.out 2>&1 &
    HOLDER=$!
    i=0
    while ! grep -q held /tmp/holder.out 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -lt 300 ] || fail "holder never got the lock: $(cat /tmp/holder.out)"
        kill -0 "$HOLDER" 2>/dev/null || fail "holder exited: $(cat /tmp/holder.out)"
        sleep 0.1
    done
}

release_lock() {
    touch "$1"
    wait "$HOLDER" || fail "holder failed: $(cat /tmp/holder.out)"
}

# expect_try CODE ARGS...: runs locktest ARGS and requires exit status CODE (0 granted, 1 conflict).
expect_try() {
    want=$1
    shift
    set +e
    locktest "$@"
    got=$?
    set -e
    expect_eq "locktest $*" "$got" "$want"
}

t_fcntl_locks() {
    # If a check fails, let the background holder end instead of waiting out its limit.
    trap 'touch /tmp/release-w /tmp/release-r; true' EXIT
    head -c 4096 /tmp/src1 >"$W/locked"
    hold_lock /tmp/release-w fcntl-hold "$W/locked" w 0 100 /tmp/release-w
    expect_try 1 fcntl-try "$W/locked" w 50 10
    expect_try 1 fcntl-try "$W/locked" r 99 1
    expect_try 0 fcntl-try "$W/locked" w 100 100
    release_lock /tmp/release-w
    expect_try 0 fcntl-try "$W/locked" w 50 10
    hold_lock /tmp/release-r fcntl-hold "$W/locked" r 0 100 /tmp/release-r
    expect_try 0 fcntl-try "$W/locked" r 0 100
    expect_try 1 fcntl-try "$W/locked" w 10 10
    release_lock /tmp/release-r
    rm "$W/locked"
}

t_flock() {
    trap 'touch /tmp/release-f; true' EXIT
    echo x >"$W/flocked"
    hold_lock /tmp/release-f flock-hold "$W/flocked" /tmp/release-f
    expect_try 1 flock-try "$W/flocked"
    release_lock /tmp/release-f
    expect_try 0 flock-try "$W/flocked"
    rm "$W/flocked"
}

t_locks_two_clients() {
    # A second mount with nosharesock is a separate connection, session and superblock, so to the server it
    # is another client: conflicts must now be found by the server's byte-range lock table (cifs.ko checks
    # locks of one mount locally first). With a write lease the first mount may still hold its lock only
    # locally; the second client's open then breaks the lease and cifs.ko pushes the lock to the server.
    # set -e also applies inside the trap, and its status becomes the step's: nothing in it may fail.
    trap 'touch /tmp/release-x /tmp/release-y; umount -l "$MNT2" 2>/dev/null || true' EXIT
    mkdir -p "$MNT2"
    mount_cifs "$MNT2" "$SMB_SHARE" "$SMB_PASS" "vers=$VERS,cache=$CACHE,nosharesock"
    W2="$MNT2/${W#"$MNT"/}"
    head -c 4096 /tmp/src1 >"$W/shared-lock"
    hold_lock /tmp/release-x fcntl-hold "$W/shared-lock" w 0 100 /tmp/release-x
    expect_try 1 fcntl-try "$W2/shared-lock" w 50 10
    expect_try 1 fcntl-try "$W2/shared-lock" r 0 1
    expect_try 0 fcntl-try "$W2/shared-lock" w 100 100
    release_lock /tmp/release-x
    expect_try 0 fcntl-try "$W2/shared-lock" w 50 10
    hold_lock /tmp/release-y flock-hold "$W2/shared-lock" /tmp/release-y
    expect_try 1 flock-try "$W/shared-lock"
    release_lock /tmp/release-y
    expect_try 0 flock-try "$W/shared-lock"
    umount "$MNT2"
    rm "$W/shared-lock"
}

t_coherency_two_clients() {
    # Two clients (see t_locks_two_clients) writing one file in turn: each must see the other's data. Under
    # cache=strict this holds only if the server breaks the other client's lease before answering.
    trap 'umount -l "$MNT2" 2>/dev/null || true' EXIT
    mkdir -p "$MNT2"
    mount_cifs "$MNT2" "$SMB_SHARE" "$SMB_PASS" "vers=$VERS,cache=$CACHE,nosharesock"
    W2="$MNT2/${W#"$MNT"/}"
    echo first >"$W/shared"
    expect_eq "client 2 reads client 1's new file" "$(cat "$W2/shared")" first
    expect_eq "client 1 reads it again" "$(cat "$W/shared")" first
    echo second >"$W2/shared"
    expect_eq "client 1 reads client 2's rewrite" "$(cat "$W/shared")" second
    echo third >>"$W/shared"
    expect_eq "client 2 reads client 1's append" "$(cat "$W2/shared" | tr '\n' ' ')" "second third "
    expect_eq "sizes agree" "$(stat -c %s "$W2/shared")" "$(stat -c %s "$W/shared")"
    rm "$W2/shared"
    umount "$MNT2"
}

t_cp_tree() {
    cp -a /tmp/tree "$W/tree"
    drop_caches
    diff -r /tmp/tree "$W/tree"
}

t_find() {
    expect_eq "find listing" "$(cd "$W/tree" && find . | sort | md5sum | cut -d' ' -f1)" "$TREE_LIST"
    expect_eq "regular files" "$(find "$W/tree" -type f | wc -l)" "$(find /tmp/tree -type f | wc -l)"
    expect_eq "by name" "$(find "$W/tree" -name deep.txt)" "$W/tree/a/b/c/deep.txt"
    expect_eq "empty files" "$(find "$W/tree" -type f -size 0 | wc -l)" 1
}

t_remount() {
    umount "$MNT"
    if is_mounted; then fail "still mounted after umount"; fi
    mount_share "$VERS" "$CACHE"
}

t_persisted() {
    # What the steps above left behind, read through a fresh mount (nothing comes from the old page cache).
    expect_eq "empty file" "$(stat -c %s "$W/empty")" 0
    expect_eq "truncated file" "$(stat -c %s "$W/f1")" 0
    # The big file's content was already read back from the server (after drop_caches); its size is enough.
    if [ -e "$W/big" ]; then expect_eq "big file size" "$(stat -c %s "$W/big")" $((BIG_FILE_MIB * 1048576)); fi
    expect_eq "hard link" "$(cat "$W/h2" | tr '\n' ' ')" "one two "
    expect_eq "mtime" "$(stat -c %Y "$W/times")" "$UTIME_EPOCH"
    stat -c '%A' "$W/ro" | grep -q w || fail "READONLY came back: $(stat -c %A "$W/ro")"
    expect_eq "appended after chmod u+w" "$(cat "$W/ro" | tr '\n' ' ')" "data more "
    diff -r /tmp/tree "$W/tree"
}

t_cleanup() {
    rm -rf "$W"
    [ ! -e "$W" ] || fail "work dir still there"
    # Work directories of other mounts may be left over if their steps failed; nothing else may be.
    expect_eq "stray entries in the share root" "$(ls "$MNT" | grep -v -e "^$BIGDIR_NAME\$" -e '^work-')" ""
}

t_umount() {
    umount "$MNT"
    if is_mounted; then fail "still mounted"; fi
}

run_mount_suite() {
    VERS=$1
    CACHE=$2
    W="$MNT/work-$VERS-$CACHE"
    STEP_PREFIX="$VERS/$CACHE/"
    step mount t_mount
    if ! is_mounted; then
        STEP_PREFIX=
        return
    fi
    step df t_df
    step mkdir_work t_mkdir_work
    step ls_bigdir t_ls_bigdir
    step touch_stat t_touch_stat
    step write_read_1m t_write_read_1m
    step append t_append
    step overwrite_middle t_overwrite_middle
    case " $BIG_FILE_CACHES " in
        *" $CACHE "*) step "write_read_${BIG_FILE_MIB}m" t_write_read_big ;;
    esac
    step truncate t_truncate
    step mkdir_rmdir t_mkdir_rmdir
    step rename t_rename
    step rename_over t_rename_over
    step unlink_open t_unlink_open
    step hardlink t_hardlink
    step chmod t_chmod
    step utimes t_utimes
    step fcntl_locks t_fcntl_locks
    step flock t_flock
    step locks_two_clients t_locks_two_clients
    step coherency_two_clients t_coherency_two_clients
    step cp_tree t_cp_tree
    step find t_find
    step remount t_remount
    step persisted t_persisted
    step cleanup t_cleanup
    step umount t_umount
    is_mounted && umount -f "$MNT"
    STEP_PREFIX=
}

# ---- mounts that must fail ----

t_wrong_password() {
    expect_kernel_errors_begin wrong_password
    set +e
    mount_share 3.1.1 strict "$SMB_SHARE" "not-the-password"
    rc=$?
    set -e
    expect_kernel_errors_end wrong_password
    [ "$rc" -ne 0 ] || fail "mount with a wrong password succeeded"
    if is_mounted; then umount "$MNT"; fail "mounted anyway"; fi
}

t_missing_share() {
    expect_kernel_errors_begin missing_share
    set +e
    mount_share 3.1.1 strict no-such-share
    rc=$?
    set -e
    expect_kernel_errors_end missing_share
    [ "$rc" -ne 0 ] || fail "mount of a missing share succeeded"
    if is_mounted; then umount "$MNT"; fail "mounted anyway"; fi
}

make_sources
for vers in $SMB_VERSIONS; do
    for cache in $SMB_CACHES; do
        run_mount_suite "$vers" "$cache"
    done
done
if [ "$NEGATIVE_TESTS" = 1 ]; then
    STEP_PREFIX="negative/"
    step wrong_password t_wrong_password
    step missing_share t_missing_share
    STEP_PREFIX=
fi
echo "SMBTEST-SUITE-DONE failures=$STEP_FAILURES"
[ "$STEP_FAILURES" -eq 0 ]
