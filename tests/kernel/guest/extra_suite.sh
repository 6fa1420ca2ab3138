# cifs.ko extra suite, run as /test.sh in the guest (see tests/kernel/vm.py and tests/kernel/test_cifs_extra.py,
# which prepares the shares and reads the results). One boot, many mounts:
#
#   sign/...     plain vers=3.1.1 mount against the server's default signing ("required")
#   seal/<v>/... vers=<v>,seal (3.1.1 and 3.0): mount, 4 MiB write/read with md5, ls, umount
#   posix/...    vers=3.1.1,posix: stat of server-made and client-made files, case, reserved characters in
#                names, chmod, unlink of an open file, rename over an open file
#   symlinks/<mode>/...  server-made symlinks, mode "windows" (vers=3.1.1) and "posix" (vers=3.1.1,posix)
#   special/<fmt>/<mode>/...  server-made FIFO, socket, char and block devices, as NFS or WSL reparse points
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_USER SMB_PASS; SMB_SHARE (default options: file type in
# PosixMode, NFS special files), POSIX_SHARE (same directory, posix_file_type_bits = false), WSL_SHARE
# (special_files = "wsl", posix_file_type_bits = false); OUTSIDE_DIR, the host directory outside the share that
# the "leak" symlinks point into. What is expected where cifs.ko 6.1 differs from a local file system is
# explained at each step and in the test module's docstring.
#
# The host checks the share after the boot, so nothing is cleaned up here. Lines "SHOW <name>: <text>" carry
# what a step saw (for example the output of cat through an escaping symlink); the host searches the whole
# console for its secret marker, which the guest never knows.

. /lib/smbtest.sh

MNT=/mnt
# The mtime/atime the host gives owned.txt (2001-02-03 04:05:06 and 2001-03-05 04:05:06 UTC; 6.1 shows
# max(atime, mtime) as atime, so the atime is the later one).
OWNED_MTIME=981173106
OWNED_ATIME=983765106

mount_cifs() {
    mount -t cifs "//$SERVER_IP/$1" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,$2"
}

is_mounted() {
    grep -q " $MNT cifs " /proc/mounts
}

# Leaves no mount behind, whatever the step did.
force_umount() {
    if is_mounted; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
}

# show NAME TEXT: a "SHOW" line on the console itself (fd 9), also from inside a step, whose output goes to
# the step log.
exec 9>&1
show() {
    printf 'SHOW %s: %s\n' "$1" "$(printf '%s' "$2" | tr -d '\000' | tr '\n' '|' | head -c 400)" >&9
}

# stat_line PATH: the fields the POSIX steps compare (busybox stat).
stat_line() {
    stat -c '%F %a %u %g %h %s' "$1"
}

near_now() {
    now=$(date +%s)
    [ $(($1 - now)) -lt 600 ] && [ $((now - $1)) -lt 600 ] || fail "$2: $1 is far from now ($now)"
}

make_sources() {
    dd if=/dev/urandom of=/tmp/src4 bs=1048576 count=4 2>/dev/null
    SRC4_MD5=$(md5_of /tmp/src4)
}

# ---- signing and encryption ----

t_sign_plain() {
    mount_cifs "$SMB_SHARE" "vers=3.1.1"
    is_mounted || fail "not mounted"
    # The host's recorder checks that every request after SESSION_SETUP was signed; here, that it works.
    head -c 100000 /tmp/src4 >"$MNT/signed-plain.bin"
    drop_caches
    expect_eq "md5" "$(md5_of "$MNT/signed-plain.bin")" "$(head -c 100000 /tmp/src4 | md5sum | cut -d' ' -f1)"
    ls "$MNT" | grep -q '^target.txt$' || fail "share listing lacks target.txt"
    umount "$MNT"
}

t_seal_mount() {
    mount_cifs "$SMB_SHARE" "vers=$VERS,seal"
    is_mounted || fail "not mounted"
    grep " $MNT cifs " /proc/mounts | grep -q seal || fail "seal not in /proc/mounts: $(grep " $MNT " /proc/mounts)"
}

t_seal_debugdata() {
    # cifs.ko marks each tree connect it encrypts with "Encrypted" in DebugData.
    cat /proc/fs/cifs/DebugData
    grep "Serial Number" /proc/fs/cifs/DebugData | grep -q Encrypted || fail "no tree connect marked Encrypted"
}

t_seal_write_read() {
    dd if=/tmp/src4 of="$MNT/sealed-$VERS.bin" bs=1048576 2>&1
    drop_caches
    expect_eq "size" "$(stat -c %s "$MNT/sealed-$VERS.bin")" 4194304
    expect_eq "md5" "$(md5_of "$MNT/sealed-$VERS.bin")" "$SRC4_MD5"
}

t_seal_ls() {
    ls -l "$MNT"
    ls "$MNT" | grep -q "^sealed-$VERS.bin\$" || fail "new file not listed"
    ls "$MNT" | grep -q '^target.txt$' || fail "target.txt not listed"
}

t_umount() {
    umount "$MNT"
    if is_mounted; then fail "still mounted"; fi
}

run_seal() {
    VERS=$1
    STEP_PREFIX="seal/$VERS/"
    step mount t_seal_mount
    if is_mounted; then
        step debugdata t_seal_debugdata
        step write_read_4m t_seal_write_read
        step ls t_seal_ls
        step umount t_umount
    fi
    force_umount
    STEP_PREFIX=
}

# ---- POSIX extensions ----

t_posix_typebits_refused() {
    # SMB_SHARE sends the file type in PosixMode bits 12-15 (the current spec, cifs.ko 6.13+). 6.1 takes
    # PosixMode as the mode and adds S_IFDIR, so the root inode gets the impossible type 05 and the mount
    # fails with ENOTDIR; the kernel logs "init_special_inode: bogus i_mode (50755)".
    # Counted rather than cleared: the host reads the whole kernel log after the run.
    bogus_before=$(dmesg | grep -c "bogus i_mode (50755)" || true)
    set +e
    out=$(mount_cifs "$SMB_SHARE" "vers=3.1.1,posix" 2>&1)
    rc=$?
    set -e
    echo "$out"
    if [ "$rc" -eq 0 ]; then umount "$MNT"; fail "posix mount with type bits succeeded on 6.1"; fi
    echo "$out" | grep -q "Not a directory" || fail "mount failed in another way: $out"
    [ "$(dmesg | grep -c "bogus i_mode (50755)" || true)" -gt "$bogus_before" ] \
        || fail "no new 'bogus i_mode' line in dmesg: $(dmesg | tail -5)"
}

t_posix_mount() {
    mount_cifs "$POSIX_SHARE" "vers=3.1.1,posix"
    is_mounted || fail "not mounted"
    # 6.1 logs "SMB3.11 POSIX Extensions are experimental" and marks the connection in DebugData.
    grep "Dialect 0x311" /proc/fs/cifs/DebugData | grep -q posix || fail "connection not marked posix"
    expect_eq "mount root" "$(stat -c %F "$MNT")" directory
}

t_posix_stat_server_files() {
    # owned.txt: made on the server with mode 0640, owner 4321:8765, a second hard link, 1234 bytes, fixed
    # mtime and atime. First a fresh stat, which 6.1 answers from a POSIX QUERY_INFO: it takes mode, nlink,
    # size and times from it but not the owner SIDs ("TODO: map uid and gid from SID" in
    # smb311_posix_info_to_fattr), so owner and group are the mount's uid and gid (0).
    stat "$MNT/owned.txt"
    expect_eq "owned.txt" "$(stat_line "$MNT/owned.txt")" "regular file 640 0 0 2 1234"
    expect_eq "owned.txt mtime" "$(stat -c %Y "$MNT/owned.txt")" "$OWNED_MTIME"
    expect_eq "owned.txt atime" "$(stat -c %X "$MNT/owned.txt")" "$OWNED_ATIME"
    near_now "$(stat -c %Z "$MNT/owned.txt")" "owned.txt ctime"
    expect_eq "owned-link.txt" "$(stat_line "$MNT/owned-link.txt")" "regular file 640 0 0 2 1234"
    expect_eq "ownedir" "$(stat -c '%F %a %h' "$MNT/ownedir")" "directory 751 3"
    expect_eq "ownedir/child" "$(stat -c %F "$MNT/ownedir/child")" directory
    # The POSIX directory listing does map S-1-22-1-4321 / S-1-22-2-8765 to ids.
    ls -ln "$MNT"
    ls -ln "$MNT" | grep ' owned.txt$' | grep -q '^-rw-r----- *2 *4321 *8765 *1234 ' \
        || fail "ls -ln: $(ls -ln "$MNT" | grep ' owned.txt$')"
    ls -ln "$MNT" | grep ' owned-link.txt$' | grep -q '^-rw-r----- *2 *4321 *8765 *1234 ' \
        || fail "ls -ln: $(ls -ln "$MNT" | grep ' owned-link.txt$')"
    ls -ln "$MNT" | grep ' ownedir$' | grep -q '^drwxr-x--x *3 *4321 *8765 ' \
        || fail "ls -ln: $(ls -ln "$MNT" | grep ' ownedir$')"
    show owned-after-listing "$(stat -c '%u %g' "$MNT/owned.txt")"
}

t_posix_create_stat() {
    mkdir "$PW"
    printf 'hello\n' >"$PW/made"
    mkdir "$PW/madedir"
    ln "$PW/made" "$PW/made-link"
    # Right after the create 6.1 shows the mount's file_mode (0755) until it asks the server again; what the
    # server stored is what counts.
    drop_caches
    expect_eq "made" "$(stat_line "$PW/made")" "regular file 644 0 0 2 6"
    expect_eq "madedir" "$(stat -c '%F %a %u %g %h' "$PW/madedir")" "directory 755 0 0 2"
    near_now "$(stat -c %Y "$PW/made")" "made mtime"
    near_now "$(stat -c %Z "$PW/made")" "made ctime"
    touch -d "2001-02-03 04:05:06" "$PW/made"
    drop_caches
    expect_eq "mtime after touch -d" "$(stat -c %Y "$PW/made")" "$OWNED_MTIME"
}

t_posix_case() {
    echo lower >"$PW/a"
    echo upper >"$PW/A"
    expect_eq "a" "$(cat "$PW/a")" lower
    expect_eq "A" "$(cat "$PW/A")" upper
    expect_eq "names" "$(ls "$PW" | grep -c '^[aA]$')" 2
    rm "$PW/A"
    expect_eq "a after rm A" "$(cat "$PW/a")" lower
    [ ! -e "$PW/A" ] || fail "A still there"
    echo upper >"$PW/A"
}

# make_odd_names DIR PREFIX: one file per character that is reserved on Windows but legal on Linux.
make_odd_names() {
    printf 'back\n' >"$1/$2back\\slash"
    printf 'colon\n' >"$1/$2co:lon"
    printf 'star\n' >"$1/$2st*ar"
    printf 'question\n' >"$1/$2q?mark"
}

check_odd_names() {
    expect_eq "backslash" "$(cat "$1/$2back\\slash")" back
    expect_eq "colon" "$(cat "$1/$2co:lon")" colon
    expect_eq "star" "$(cat "$1/$2st*ar")" star
    expect_eq "question" "$(cat "$1/$2q?mark")" question
    ls "$1" | grep -F -x "$2co:lon" || fail "ls: no $2co:lon"
    ls "$1" | grep -F -x "$2back\\slash" || fail "ls: no $2back\\slash"
}

t_posix_names_mapposix() {
    # The default "mapposix" of 6.1 maps : * ? (and " < > |) to Services-for-Mac private-use characters
    # (U+F022, U+F021, U+F025) before they reach the server, even on POSIX mounts ('\' is sent as it is).
    # Round-trip through this client works; the host checks what the server stored.
    make_odd_names "$PW" m-
    check_odd_names "$PW" m-
}

t_posix_remount_nomapposix() {
    umount "$MNT"
    mount_cifs "$POSIX_SHARE" "vers=3.1.1,posix,nomapposix"
    is_mounted || fail "not mounted"
}

t_posix_names_raw() {
    # With nomapposix the characters go on the wire as they are; POSIX opens take them as name characters.
    make_odd_names "$PW" r-
    check_odd_names "$PW" r-
    drop_caches
    check_odd_names "$PW" r-
}

t_posix_chmod() {
    # 6.1 has no POSIX chmod (6.13: SET_INFO with an S-1-5-88-3 ACE). chmod returns 0, 6.1 resets the
    # cached mode to file_mode, and the server's mode does not change: a fresh look shows 0644 again.
    printf 'c\n' >"$PW/chmodded"
    drop_caches
    expect_eq "before" "$(stat -c %a "$PW/chmodded")" 644
    chmod 600 "$PW/chmodded"
    show chmod_cached "$(stat -c %a "$PW/chmodded")"
    umount "$MNT"
    mount_cifs "$POSIX_SHARE" "vers=3.1.1,posix,nomapposix"
    expect_eq "after remount (server unchanged)" "$(stat -c %a "$PW/chmodded")" 644
}

t_posix_unlink_open() {
    # As on a local file system: the name goes at unlink, the open descriptor keeps the data, and the name
    # can be used again at once. 6.1 sends the delete as a POSIX CREATE with DELETE_ON_CLOSE (no
    # FileDispositionInformationEx), so it is up to the server to remove the name while other opens remain.
    trap 'exec 3<&- 2>/dev/null; true' EXIT
    printf 'first\n' >"$PW/unl"
    exec 3<"$PW/unl"
    rm "$PW/unl"
    ls -la "$PW"
    if ls "$PW" | grep -q -x unl; then fail "name still listed while another handle is open"; fi
    # Not asserted: 6.1 answers this stat from its own dentry while fd 3 holds the inode; no CREATE for the
    # name reaches the server after the unlink (checked with the server's request log), so it says nothing
    # about the server, whose listing above no longer has the name.
    show unlink_open_stat_while_open "$([ -e "$PW/unl" ] && echo present || echo absent)"
    expect_eq "read through the open descriptor" "$(cat <&3)" first
    # Not tried: reusing the name while fd 3 is open (6.1 goes through its stale dentry and the write fails
    # with ENOENT although the server creates the file).
    exec 3<&-
    printf 'third\n' >"$PW/unl" || fail "name not reusable after the unlinked file was closed"
    # 6.1 makes this file through its cached inode too: an OVERWRITE_IF whose POSIX mode is 0, so the server
    # creates it 0000 and the share's ordinary account may not open it again (as on any Unix file system). The
    # host checks its content (test_posix_unlink_open_on_server); shown here, the mode 6.1 asked for.
    show unlink_open_recreated_mode "$(stat -c %a "$PW/unl")"
}

t_posix_rename_over_open() {
    # rename over a file that is open elsewhere replaces it; the descriptor keeps the old file's data.
    # Not asserted: reading dst by name while fd 4 is open. 6.1 serves that open from the handle fd 4 holds
    # (no new CREATE on the wire) and so returns the old data until fd 4 is closed; shown as SHOW line.
    trap 'exec 4<&- 2>/dev/null; true' EXIT
    printf 'old\n' >"$PW/dst"
    printf 'new\n' >"$PW/src"
    exec 4<"$PW/dst"
    mv "$PW/src" "$PW/dst"
    [ ! -e "$PW/src" ] || fail "src still there"
    expect_eq "fd 4 (replaced file)" "$(cat <&4)" old
    show rename_over_open_by_name_while_open "$(cat "$PW/dst")"
    exec 4<&-
    drop_caches
    expect_eq "dst after the close" "$(cat "$PW/dst")" new
    expect_eq "entries" "$(ls "$PW" | grep -c -x -e src -e dst)" 1
}

run_posix() {
    PW="$MNT/posix-work"
    STEP_PREFIX="posix/"
    step typebits_mount_refused t_posix_typebits_refused
    force_umount
    step mount t_posix_mount
    if is_mounted; then
        step stat_server_files t_posix_stat_server_files
        step create_stat t_posix_create_stat
        step case_sensitive t_posix_case
        step names_mapposix t_posix_names_mapposix
        step remount_nomapposix t_posix_remount_nomapposix
        step names_raw t_posix_names_raw
        step chmod_not_supported t_posix_chmod
        step unlink_open t_posix_unlink_open
        step rename_over_open t_posix_rename_over_open
        step umount t_umount
    fi
    force_umount
    STEP_PREFIX=
}

# ---- symlinks made on the server ----

t_sym_mount() {
    mount_cifs "$SHARE" "$OPTS"
    is_mounted || fail "not mounted"
}

# expect_link NAME TARGET: a symlink (ls -l and stat) whose target reads as TARGET, with st_size its length.
expect_link() {
    expect_eq "$1 type" "$(stat -c %F "$MNT/$1")" "symbolic link"
    expect_eq "$1 target" "$(readlink "$MNT/$1")" "$2"
    ls -l "$MNT" | grep -F -q " $1 -> $2" || fail "ls -l: $(ls -l "$MNT" | grep -F " $1 ")"
}

t_sym_ls() {
    ls -l "$MNT"
    # absin points at <share path>/target.txt on the server; it is presented relative to the link.
    expect_link rel target.txt
    expect_link absin target.txt
    expect_link out /etc/passwd
    expect_link dang nowhere
    expect_link sub realdir
    expect_link leak "$OUTSIDE_DIR/secret"
    expect_link leakrel "../$(basename "$OUTSIDE_DIR")/secret"
    expect_link outdir "$OUTSIDE_DIR"
    expect_eq "realdir" "$(stat -c %F "$MNT/realdir")" directory
}

t_sym_sizes() {
    # On a local file system lstat's st_size of a symlink is the length of the target readlink returns.
    for name in rel absin out dang sub; do
        expect_eq "$name st_size" "$(stat -c %s "$MNT/$name")" "$(readlink "$MNT/$name" | tr -d '\n' | wc -c)"
    done
}

t_sym_follow() {
    expect_eq "cat rel" "$(cat "$MNT/rel")" target-content
    expect_eq "cat absin" "$(cat "$MNT/absin")" target-content
    expect_eq "cat sub/inner.txt" "$(cat "$MNT/sub/inner.txt")" inner-content
    expect_eq "ls sub/" "$(ls "$MNT/sub/")" inner.txt
    expect_eq "stat -L sub" "$(stat -L -c %F "$MNT/sub")" directory
    if cat "$MNT/dang" 2>/dev/null; then fail "dangling link opened"; fi
}

t_sym_outside() {
    # The client resolves every link itself, in its own namespace: out -> /etc/passwd is the guest's file,
    # and the links into the host's OUTSIDE_DIR lead nowhere in the guest. The host greps the whole console
    # for the marker in OUTSIDE_DIR/secret.
    set +e
    for name in leak leakrel outdir/secret sub/../leak; do
        out=$(cat "$MNT/$name" 2>&1)
        rc=$?
        show "cat-$name" "rc=$rc $out"
        [ "$rc" -ne 0 ] || { set -e; fail "cat $name succeeded: $out"; }
    done
    out=$(cat "$MNT/out" 2>&1)
    rc=$?
    set -e
    show cat-out "rc=$rc $(echo "$out" | head -3 | tr '\n' '|')"
    if [ "$rc" -eq 0 ]; then
        cmp "$MNT/out" /etc/passwd || fail "out did not resolve to the guest's own /etc/passwd"
    fi
}

run_symlinks() {
    MODE=$1
    SHARE=$2
    OPTS=$3
    STEP_PREFIX="symlinks/$MODE/"
    step mount t_sym_mount
    if is_mounted; then
        step ls_readlink t_sym_ls
        step st_size t_sym_sizes
        step follow_inside t_sym_follow
        step nothing_outside t_sym_outside
        step umount t_umount
    fi
    force_umount
    STEP_PREFIX=
}

# ---- special files made on the server ----

t_special_mount() {
    mount_cifs "$SHARE" "$OPTS"
    is_mounted || fail "not mounted"
}

t_special_types_known() {
    # WSL tags (IO_REPARSE_TAG_LX_FIFO, AF_UNIX, LX_CHR, LX_BLK): 6.1 knows them from the tag alone. The
    # device numbers live in WSL's $LXDEV EA, which 6.1 does not read, so they show as 0, 0.
    ls -l "$MNT/special"
    expect_eq fifo "$(stat -c %F "$MNT/special/fifo")" fifo
    expect_eq sock "$(stat -c %F "$MNT/special/sock")" socket
    expect_eq chr "$(stat -c %F "$MNT/special/chr")" "character special file"
    expect_eq blk "$(stat -c %F "$MNT/special/blk")" "block special file"
    expect_eq plain "$(stat -c %F "$MNT/special/plain")" "regular file"
    ls -l "$MNT/special" | grep -q '^p.* fifo$' || fail "ls -l fifo"
    ls -l "$MNT/special" | grep -q '^s.* sock$' || fail "ls -l sock"
    ls -l "$MNT/special" | grep -q '^c.* chr$' || fail "ls -l chr"
    ls -l "$MNT/special" | grep -q '^b.* blk$' || fail "ls -l blk"
}

t_special_nfs_unsupported() {
    # IO_REPARSE_TAG_NFS is read by cifs.ko from 6.7 on; 6.1 fails stat of such a file with EOPNOTSUPP.
    # The plain file beside them is fine.
    set +e
    for name in fifo sock chr blk; do
        out=$(stat -c %F "$MNT/special/$name" 2>&1)
        rc=$?
        show "nfs-stat-$name" "rc=$rc $out"
        [ "$rc" -ne 0 ] || { set -e; fail "stat $name succeeded: $out"; }
        echo "$out" | grep -q "Operation not supported" || { set -e; fail "stat $name: $out"; }
    done
    set -e
    expect_eq plain "$(stat -c %F "$MNT/special/plain")" "regular file"
    # readdir still returns the names (a glob needs no stat).
    expect_eq "listed names" "$(cd "$MNT/special" && echo *)" "blk chr fifo plain sock"
}

t_special_posix_as_symlinks() {
    # On POSIX mounts 6.1 turns every entry with FILE_ATTRIBUTE_REPARSE_POINT into a symlink (it has no
    # reparse-tag or PosixMode-type handling there), whatever the tag; readlink then fails (EOPNOTSUPP).
    ls -l "$MNT/special" || true
    for name in fifo sock chr blk; do
        expect_eq "$name" "$(stat -c %F "$MNT/special/$name")" "symbolic link"
        if readlink "$MNT/special/$name"; then fail "readlink $name succeeded"; fi
    done
    expect_eq plain "$(stat -c %F "$MNT/special/plain")" "regular file"
}

run_special() {
    FMT=$1
    MODE=$2
    SHARE=$3
    OPTS=$4
    CHECK=$5
    STEP_PREFIX="special/$FMT/$MODE/"
    step mount t_special_mount
    if is_mounted; then
        step types "$CHECK"
        step umount t_umount
    fi
    force_umount
    STEP_PREFIX=
}

make_sources
step sign/plain_mount t_sign_plain
force_umount
run_seal 3.1.1
run_seal 3.0
run_posix
run_symlinks windows "$SMB_SHARE" "vers=3.1.1"
run_symlinks posix "$POSIX_SHARE" "vers=3.1.1,posix"
run_special wsl windows "$WSL_SHARE" "vers=3.1.1" t_special_types_known
run_special wsl posix "$WSL_SHARE" "vers=3.1.1,posix" t_special_posix_as_symlinks
run_special nfs windows "$SMB_SHARE" "vers=3.1.1" t_special_nfs_unsupported
run_special nfs posix "$POSIX_SHARE" "vers=3.1.1,posix" t_special_posix_as_symlinks
echo "SMBTEST-SUITE-DONE failures=$STEP_FAILURES"
[ "$STEP_FAILURES" -eq 0 ]
