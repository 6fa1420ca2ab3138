# cifs.ko from Debian unstable (7.x), run as /test.sh in the guest (see tests/kernel/test_cifs_modern.py, which
# prepares the shares with tests/kernel/test_cifs_extra.prepare_extra_shares and checks the share afterwards).
# What a current kernel client does that 6.1 cannot, one boot:
#
#   posix/...     vers=3.1.1,posix on the default share (file type in PosixMode bits 12-15): server-made special
#                 files, symlinks, owners; client-made files, FIFOs, devices and symlinks with their modes
#   nfs/...       vers=3.1.1 without POSIX: server-made IO_REPARSE_TAG_NFS special files and symlinks
#   mknod/<fmt>/  vers=3.1.1,reparse=<fmt>,symlink=native: the client creates special files and symlinks as
#                 reparse points (FSCTL_SET_REPARSE_POINT); after a remount they read back the same
#   escape/...    symlinks that point outside the share are shown, never followed by the server
#   copy/...      copy_file_range(2) of a 64 MiB file on the "copies" share (its own connection and tree, so the
#                 host can count the server's READ and WRITE requests for it in the server's log): a server-side
#                 copy (FSCTL_SRV_COPYCHUNK_WRITE), checked byte for byte on the host
#   holes/...     fallocate punch-hole (FSCTL_SET_ZERO_DATA) frees blocks; SEEK_DATA/SEEK_HOLE
#                 (FSCTL_QUERY_ALLOCATED_RANGES) report exactly the hole
#   reflink/...   FICLONE (cp --reflink=always; FSCTL_DUPLICATE_EXTENTS_TO_FILE) on the "xfs" share, a
#                 loop-mounted XFS with reflink; on the ext4-backed default share it fails with EOPNOTSUPP
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_USER SMB_PASS SMB_SHARE.

. /lib/smbtest.sh

MNT=/mnt

mount_cifs() {
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1$1"
}

force_umount() {
    if grep -q " $MNT cifs " /proc/mounts; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
}

exec 9>&1
show() {
    printf 'SHOW %s: %s\n' "$1" "$(printf '%s' "$2" | tr -d '\000' | tr '\n' '|' | head -c 400)" >&9
}

# type_of PATH: "<file type> <major>:<minor>" as busybox stat prints them.
type_of() {
    stat -c '%F %t:%T' "$1"
}

expect_server_special_files() {
    expect_eq "fifo" "$(type_of "$MNT/special/fifo")" "fifo 0:0"
    expect_eq "socket" "$(type_of "$MNT/special/sock")" "socket 0:0"
    expect_eq "char" "$(type_of "$MNT/special/chr")" "character special file 1:3"
    expect_eq "block" "$(type_of "$MNT/special/blk")" "block special file 7:5"
    expect_eq "plain" "$(cat "$MNT/special/plain")" "plain"
}

expect_server_symlinks() {
    expect_eq "rel" "$(readlink "$MNT/rel")" "target.txt"
    # An absolute target inside the share is presented relative to the link's directory.
    expect_eq "absin" "$(readlink "$MNT/absin")" "target.txt"
    expect_eq "out" "$(readlink "$MNT/out")" "/etc/passwd"
    expect_eq "dang" "$(readlink "$MNT/dang")" "nowhere"
    expect_eq "through rel" "$(cat "$MNT/rel")" "target-content"
    expect_eq "through sub" "$(cat "$MNT/sub/inner.txt")" "inner-content"
    [ -L "$MNT/rel" ] || fail "rel is not a symlink"
}

# ---- POSIX ----

t_posix_mount() {
    mount_cifs ",posix"
    grep " $MNT cifs " /proc/mounts | grep -q posix || fail "not a POSIX mount: $(grep " $MNT " /proc/mounts)"
}

t_posix_server_objects() {
    expect_server_special_files
    expect_server_symlinks
    expect_eq "owned.txt" "$(stat -c '%F %a %u %g %h %s' "$MNT/owned.txt")" "regular file 640 4321 8765 2 1234"
    expect_eq "ownedir" "$(stat -c '%F %a %u %g' "$MNT/ownedir")" "directory 751 4321 8765"
    expect_eq "fifo mode" "$(stat -c '%a' "$MNT/special/fifo")" "644"
}

t_posix_client_objects() {
    mkdir "$MNT/pwork"
    cd "$MNT/pwork"
    umask 022
    echo hello >file
    chmod 0640 file
    mkdir -m 0711 dir
    ln -s file link
    mkfifo -m 0600 fifo
    mknod -m 0644 chr c 1 3
    mknod -m 0644 blk b 7 5
    cd /
    drop_caches
    expect_eq "file" "$(stat -c '%F %a' "$MNT/pwork/file")" "regular file 640"
    expect_eq "dir" "$(stat -c '%F %a' "$MNT/pwork/dir")" "directory 711"
    expect_eq "link" "$(readlink "$MNT/pwork/link")" "file"
    expect_eq "through link" "$(cat "$MNT/pwork/link")" "hello"
    expect_eq "fifo" "$(type_of "$MNT/pwork/fifo")" "fifo 0:0"
    expect_eq "chr" "$(type_of "$MNT/pwork/chr")" "character special file 1:3"
    expect_eq "blk" "$(type_of "$MNT/pwork/blk")" "block special file 7:5"
    show posix-client-modes "$(stat -c '%n %a' "$MNT"/pwork/*)"
    # Never 07777 cut down by the mask (cifs.ko sends ACL_NO_MODE for these creates).
    for name in fifo chr blk; do
        mode=$(stat -c '%a' "$MNT/pwork/$name")
        [ "${#mode}" -le 3 ] || fail "$name has mode $mode"
    done
}

t_posix_chmod() {
    chmod 0604 "$MNT/pwork/file"
    drop_caches
    expect_eq "after chmod" "$(stat -c '%a' "$MNT/pwork/file")" "604"
}

t_posix_umount() {
    umount "$MNT"
}

# ---- without POSIX: NFS reparse points ----

t_nfs_mount() {
    mount_cifs ""
}

t_nfs_server_objects() {
    expect_server_special_files
    expect_server_symlinks
}

t_nfs_umount() {
    umount "$MNT"
}

# ---- client-made reparse points ----

t_mknod_create() {
    mount_cifs ",reparse=$FMT,symlink=native"
    mkdir "$MNT/r$FMT"
    cd "$MNT/r$FMT"
    ln -s ../target.txt link
    mkfifo fifo
    mknod chr c 1 3
    mknod blk b 7 5
    cd /
    umount "$MNT"
}

t_mknod_read_back() {
    mount_cifs ""
    expect_eq "link" "$(readlink "$MNT/r$FMT/link")" "../target.txt"
    expect_eq "through link" "$(cat "$MNT/r$FMT/link")" "target-content"
    expect_eq "fifo" "$(type_of "$MNT/r$FMT/fifo")" "fifo 0:0"
    if [ "$FMT" = nfs ]; then
        expect_eq "chr" "$(type_of "$MNT/r$FMT/chr")" "character special file 1:3"
        expect_eq "blk" "$(type_of "$MNT/r$FMT/blk")" "block special file 7:5"
    else
        # WSL keeps the device numbers in the $LXDEV extended attribute, which the server stores byte for byte.
        expect_eq "wsl chr" "$(type_of "$MNT/r$FMT/chr")" "character special file 1:3"
        expect_eq "wsl blk" "$(type_of "$MNT/r$FMT/blk")" "block special file 7:5"
    fi
    umount "$MNT"
}

# ---- escapes ----

t_escape() {
    mount_cifs ",posix"
    for name in leak leakrel outdir/secret out; do
        show "cat-$name" "$(cat "$MNT/$name" 2>&1)"
    done
    umount "$MNT"
}

# ---- server-side copy, holes, clones (/bin/filetest, tests/kernel/filetest.c) ----

mount_share() {
    mount -t cifs "//$SERVER_IP/$1" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1$2"
}

t_copy_server_side() {
    # Nothing else is mounted: the server's log between this tree connect and its disconnect is this copy.
    mount_share copies ",nosharesock"
    filetest copy "$MNT/copysrc.bin" "$MNT/copydst.bin"
    expect_eq "size" "$(stat -c %s "$MNT/copydst.bin")" "67108864"
    umount "$MNT"
}

t_holes() {
    mount_cifs ""
    dd if=/dev/urandom of="$MNT/holes.bin" bs=1048576 count=4 2>/dev/null
    sync
    expect_eq "before" "$(filetest map "$MNT/holes.bin" | tr '\n' ' ')" "0+4194304 "
    filetest punch "$MNT/holes.bin" 1048576 2097152
    expect_eq "after" "$(filetest map "$MNT/holes.bin" | tr '\n' ' ')" "0+1048576 3145728+1048576 "
    expect_eq "size" "$(stat -c %s "$MNT/holes.bin")" "4194304"
    expect_eq "zeros" "$(dd if="$MNT/holes.bin" bs=1048576 skip=1 count=2 2>/dev/null | md5sum | cut -d' ' -f1)" \
        "$(dd if=/dev/zero bs=1048576 count=2 2>/dev/null | md5sum | cut -d' ' -f1)"
    umount "$MNT"
}

t_reflink_xfs() {
    mount_share xfs ""
    filetest clone "$MNT/ref.bin" "$MNT/ref-clone.bin"
    expect_eq "clone" "$(md5_of "$MNT/ref-clone.bin")" "$(md5_of "$MNT/ref.bin")"
    umount "$MNT"
}

t_reflink_ext4() {
    mount_cifs ""
    if out=$(filetest clone "$MNT/ref.bin" "$MNT/ref-clone.bin" 2>&1); then
        fail "FICLONE succeeded on a share that cannot clone"
    fi
    case "$out" in *"errno 95)"*) ;; *) fail "FICLONE: $out" ;; esac
    [ ! -e "$MNT/ref-clone.bin" ] || fail "the failed clone left ref-clone.bin"
    umount "$MNT"
}

step posix/mount t_posix_mount
step posix/server_objects t_posix_server_objects
step posix/client_objects t_posix_client_objects
step posix/chmod t_posix_chmod
step posix/umount t_posix_umount
force_umount
step nfs/mount t_nfs_mount
step nfs/server_objects t_nfs_server_objects
step nfs/umount t_nfs_umount
force_umount
for FMT in nfs wsl; do
    step "mknod/$FMT/create" t_mknod_create
    force_umount
    step "mknod/$FMT/read_back" t_mknod_read_back
    force_umount
done
step escape/not_followed t_escape
force_umount
step copy/server_side t_copy_server_side
force_umount
step holes/punch_and_seek t_holes
force_umount
step reflink/xfs t_reflink_xfs
force_umount
step reflink/ext4_refused t_reflink_ext4
force_umount
echo "SMBTEST-SUITE-DONE"
exit "$STEP_FAILURES"
