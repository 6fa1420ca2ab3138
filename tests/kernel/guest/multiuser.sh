# One `multiuser` cifs mount shared by several local users, run as /test.sh in the guest by
# tests/kernel/test_cifs_multiuser.py: first against smbsrv (SERVER_PORT), then against Samba 4.17 (SAMBA_PORT).
#
# Root mounts once with the mount user's credentials (MOUNT_USER); every other uid that touches the mount gets a
# session of its own from the "cifs:a:<server address>" logon key in its session keyring (tests/kernel/multiuser.c
# adds it, as `cifscreds add` does). The users: UID_A and UID_B, each with its own SMB user's key, one uid without a
# key (NOKEY_UID) and one whose key has a wrong password (BADPASS_UID). Each `multiuser` run prints CHECK lines; the
# console gets them prefixed with the server's name ("smbsrv CHECK ...").
#
# Mount options: multiuser with sec=ntlmssp (the keyring credentials are NTLM ones; cifs.ko builds each user's
# session with the mount's sectype); no oplocks or leases and actimeo=0, so that every check asks the server as
# the uid making it, instead of answering from attributes or a handle cached for another user's session (cifs.ko
# keeps one inode per file for all users of the mount).
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SAMBA_PORT SMB_SHARE MOUNT_USER MOUNT_PASS USER_A PASS_A UID_A
# GID_A USER_B PASS_B UID_B GID_B NOKEY_UID BADPASS_UID.

. /lib/smbtest.sh

t_mount() {
    echo 0 >/sys/module/cifs/parameters/enable_oplocks
    mkdir -p "/mnt/$1"
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "/mnt/$1" \
        -o "ip=$SERVER_IP,port=$2,username=$MOUNT_USER,password=$MOUNT_PASS,vers=3.1.1,multiuser,sec=ntlmssp,actimeo=0"
}

# t_users NAME: the users one after the other on /mnt/NAME, into /tmp/NAME.out.
t_users() {
    out="/tmp/$1.out"
    : >"$out"
    multiuser first "/mnt/$1" "$UID_A" "$GID_A" "$SERVER_IP" "$USER_A:$PASS_A" >>"$out"
    multiuser second "/mnt/$1" "$UID_B" "$GID_B" "$SERVER_IP" "$USER_B:$PASS_B" >>"$out"
    multiuser first_again "/mnt/$1" "$UID_A" "$GID_A" "$SERVER_IP" "$USER_A:$PASS_A" >>"$out"
    expect_kernel_errors_begin "multiuser_refused"
    multiuser nokey "/mnt/$1" "$NOKEY_UID" "$NOKEY_UID" >>"$out"
    multiuser badpass "/mnt/$1" "$BADPASS_UID" "$BADPASS_UID" "$SERVER_IP" "$USER_A:wrong-$PASS_A" >>"$out"
    expect_kernel_errors_end "multiuser_refused"
    multiuser root "/mnt/$1" 0 0 >>"$out"
}

t_umount() {
    umount "/mnt/$1"
}

step multiuser/mount-smbsrv t_mount smbsrv "$SERVER_PORT"
step multiuser/smbsrv t_users smbsrv
step multiuser/umount-smbsrv t_umount smbsrv
step multiuser/mount-samba t_mount samba "$SAMBA_PORT"
step multiuser/samba t_users samba
step multiuser/umount-samba t_umount samba
for run in smbsrv samba; do
    [ -f "/tmp/$run.out" ] && sed "s/^/$run /" "/tmp/$run.out"
done
echo "SMBTEST-SUITE-DONE"
exit "$STEP_FAILURES"
