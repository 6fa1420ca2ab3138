# The POSIX semantics sweep (tests/kernel/posixcheck.c), run as /test.sh in the guest by
# tests/kernel/test_cifs_posix_sweep.py: once in a directory of the guest's tmpfs (real Linux semantics) and once
# in a directory of a vers=3.1.1,posix mount, both as the uid and gid the server acts as (SWEEP_UID, SWEEP_GID),
# so that the client's own permission checks (cifs.ko shows the owners the server reports) and the server's agree
# on who owns what. Each run's lines go to the console with a prefix, "tmpfs CHECK ..." or "cifs CHECK ...".
#
# The mount is set up so that what the sweep sees is what the server did, not what cifs.ko remembers:
# - cifs.ko gives a file it has just created the attributes of a non-POSIX mount (file_mode 0755, the mount's
#   uid and gid): fs/smb/client/dir.c __cifs_do_create fills the inode from FILE_ALL_INFORMATION only ("TODO: Add
#   support for calling POSIX query info here"), and cifs_atomic_open sets FMODE_CREATED only for O_EXCL, so the
#   VFS then checks the caller's access against those attributes: without uid=/gid= a non-root O_CREAT|O_TRUNC
#   of a new file fails with EACCES after the server created it.
# - Those attributes stay while cifs.ko holds a lease on the file (cifs_dentry_needs_reval trusts a cached
#   inode under CIFS_CACHE_READ), and otherwise for actimeo: enable_oplocks=0 and actimeo=0 make every lookup
#   ask the server.
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_USER SMB_PASS SMB_SHARE SWEEP_UID SWEEP_GID.

. /lib/smbtest.sh

MNT=/mnt

t_mount() {
    echo 0 >/sys/module/cifs/parameters/enable_oplocks
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1,posix,actimeo=0,uid=$SWEEP_UID,gid=$SWEEP_GID"
    mkdir "$MNT/sweep"
    expect_eq "owner" "$(stat -c '%u:%g' "$MNT/sweep")" "$SWEEP_UID:$SWEEP_GID"
}

t_cifs() {
    expect_kernel_errors_begin posix_sweep
    posixcheck "$MNT/sweep" "$SWEEP_UID" "$SWEEP_GID" >/tmp/cifs.out
    expect_kernel_errors_end posix_sweep
}

t_umount() {
    umount "$MNT"
}

step sweep/tmpfs sweep_tmpfs
step sweep/mount t_mount
step sweep/cifs t_cifs
step sweep/umount t_umount
for run in tmpfs cifs; do
    [ -f "/tmp/$run.out" ] && sed "s/^/$run /" "/tmp/$run.out"
done
echo "SMBTEST-SUITE-DONE"
exit "$STEP_FAILURES"
