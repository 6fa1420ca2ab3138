# The POSIX semantics sweep (tests/kernel/posixcheck.c) on default vers=3.1.1 mounts (no posix), run as /test.sh
# in the guest by tests/kernel/test_cifs_sweep_windows_semantics.py: once in a directory of the guest's tmpfs,
# once on a mount of smbsrv (SERVER_PORT) and once on a mount of Samba 4.17 (SAMBA_PORT), all as the uid and gid
# both servers act as. The mount options are those of guest/posix_sweep.sh minus posix (see there why:
# enable_oplocks=0 and actimeo=0 so every lookup asks the server; uid=/gid= so cifs.ko's own permission checks
# let the sweep's user act), so that the two servers' lines differ only where the servers do.
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SAMBA_PORT SMB_USER SMB_PASS SMB_SHARE SWEEP_UID SWEEP_GID.

. /lib/smbtest.sh

# t_mount NAME PORT: mounts the server at /mnt/NAME and makes the sweep's directory there.
t_mount() {
    echo 0 >/sys/module/cifs/parameters/enable_oplocks
    mkdir -p "/mnt/$1"
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "/mnt/$1" \
        -o "ip=$SERVER_IP,port=$2,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1,actimeo=0,uid=$SWEEP_UID,gid=$SWEEP_GID"
    mkdir "/mnt/$1/sweep"
}

# t_sweep NAME: the sweep in /mnt/NAME, then the unmount. One after the other: with two guest CPUs on the two
# shared host cores the boot took longer (45.8 s against 35 s).
t_sweep() {
    expect_kernel_errors_begin "sweep_$1"
    posixcheck "/mnt/$1/sweep" "$SWEEP_UID" "$SWEEP_GID" >"/tmp/$1.out"
    expect_kernel_errors_end "sweep_$1"
    umount "/mnt/$1"
}

step sweep/tmpfs sweep_tmpfs
step sweep/mount-smbsrv t_mount smbsrv "$SERVER_PORT"
step sweep/smbsrv t_sweep smbsrv
step sweep/mount-samba t_mount samba "$SAMBA_PORT"
step sweep/samba t_sweep samba
for run in tmpfs smbsrv samba; do
    [ -f "/tmp/$run.out" ] && sed "s/^/$run /" "/tmp/$run.out"
done
echo "SMBTEST-SUITE-DONE"
exit "$STEP_FAILURES"
