# One `multiuser` cifs mount shared by several local users, run as /test.sh in the guest by
# tests/kernel/test_cifs_multiuser.py: first against smbsrv (SERVER_PORT), then against Samba 4.17 (SAMBA_PORT).
#
# Root mounts once with the mount user's credentials (MOUNT_USER); every other uid that touches the mount gets a
# session of its own from the "cifs:a:<server address>" logon key in its session keyring (tests/kernel/multiuser.c
# adds it, as `cifscreds add` does). The users: UID_A and UID_B, each with its own SMB user's key, one uid without a
# key (NOKEY_UID) and one whose key has a wrong password (BADPASS_UID). Then A and B create files at the same time,
# and hold a file open each while the host cuts the connection ("SMBTEST-MARK cut-NAME" on the console). Each
# `multiuser` run prints CHECK lines; the console gets them prefixed with the server's name ("smbsrv CHECK ...").
#
# Mount options: multiuser with sec=ntlmssp (the keyring credentials are NTLM ones; cifs.ko builds each user's
# session with the mount's sectype); no oplocks or leases and actimeo=0, so that every check asks the server as
# the uid making it, instead of answering from attributes or a handle cached for another user's session (cifs.ko
# keeps one inode per file for all users of the mount). The cut runs on a second mount with leases (cifs.ko asks
# for durable handles only with a lease), so each user's file comes back through its durable handle.
#
# Settings (from /run-env.sh): SERVER_IP SERVER_PORT SAMBA_PORT SMB_SHARE MOUNT_USER MOUNT_PASS USER_A PASS_A UID_A
# GID_A USER_B PASS_B UID_B GID_B NOKEY_UID BADPASS_UID.

. /lib/smbtest.sh

exec 9>&1  # the console, also inside a step (for the host's cut mark)

# t_mount NAME PORT OPLOCKS: OPLOCKS 0 for the checks, 1 for the cut (durable handles come with leases only).
t_mount() {
    echo "$3" >/sys/module/cifs/parameters/enable_oplocks
    mkdir -p "/mnt/$1"
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "/mnt/$1" \
        -o "ip=$SERVER_IP,port=$2,username=$MOUNT_USER,password=$MOUNT_PASS,vers=3.1.1,multiuser,sec=ntlmssp,actimeo=0,echo_interval=1"
}

# as_a ROLE NAME / as_b ROLE NAME: multiuser as user A or B on /mnt/NAME.
as_a() {
    multiuser "$1" "/mnt/$2" "$UID_A" "$GID_A" "$SERVER_IP" "$USER_A:$PASS_A"
}

as_b() {
    multiuser "$1" "/mnt/$2" "$UID_B" "$GID_B" "$SERVER_IP" "$USER_B:$PASS_B"
}

# t_users NAME: the users one after the other on /mnt/NAME, into /tmp/NAME.out.
t_users() {
    out="/tmp/$1.out"
    : >"$out"
    as_a first "$1" >>"$out"
    as_b second "$1" >>"$out"
    as_a first_again "$1" >>"$out"
    expect_kernel_errors_begin "multiuser_refused"
    multiuser nokey "/mnt/$1" "$NOKEY_UID" "$NOKEY_UID" >>"$out"
    multiuser badpass "/mnt/$1" "$BADPASS_UID" "$BADPASS_UID" "$SERVER_IP" "$USER_A:wrong-$PASS_A" >>"$out"
    expect_kernel_errors_end "multiuser_refused"
    multiuser root "/mnt/$1" 0 0 >>"$out"
}

# t_burst NAME: both users create 40 files each at the same time, their requests interleaved on one connection.
t_burst() {
    as_a burst_a "$1" >/tmp/burst_a.out &
    pid_a=$!
    as_b burst_b "$1" >/tmp/burst_b.out &
    pid_b=$!
    wait "$pid_a"
    wait "$pid_b"
    cat /tmp/burst_a.out /tmp/burst_b.out >>"/tmp/$1.out"
}

# t_cut NAME: A and B each hold a file open for writing; the host cuts the mount's TCP connection at the mark,
# cifs.ko reconnects and sets each user's session up again; then both write, close, and create a new file.
t_cut() {
    rm -f /tmp/hold_a.ready /tmp/hold_b.ready /tmp/cut.done
    as_a hold_a "$1" >/tmp/hold_a.out &
    pid_a=$!
    as_b hold_b "$1" >/tmp/hold_b.out &
    pid_b=$!
    tries=0
    while [ ! -f /tmp/hold_a.ready ] || [ ! -f /tmp/hold_b.ready ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "the holders did not get ready"
        sleep 0.1
    done
    before=$(reconnects)
    [ -n "$before" ] || fail "no reconnect count in /proc/fs/cifs/Stats: $(cat /proc/fs/cifs/Stats)"
    echo "SMBTEST-MARK cut-$1" >&9
    # The host cuts when it reads the mark; cifs.ko sees the connection go at once (echo_interval=1 otherwise)
    # and connects again; only then may the holders go on.
    tries=0
    while [ "$(reconnects)" = "$before" ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "cifs.ko did not reconnect within 30 s"
        sleep 0.1
    done
    # The count moves once the TCP connection is back, before the sessions and handles are. Without this pause
    # Samba lost the write after the cut in 2 of 6 runs (close: EAGAIN, the bytes never reached the file; smbsrv
    # in none), a race of the reconnect, not what is checked here.
    sleep 2
    touch /tmp/cut.done
    wait "$pid_a"
    wait "$pid_b"
    cat /tmp/hold_a.out /tmp/hold_b.out >>"/tmp/$1.out"
    as_a after_cut_a "$1" >>"/tmp/$1.out"
    as_b after_cut_b "$1" >>"/tmp/$1.out"
}

# reconnects: how many times cifs.ko has connected a lost TCP session again (tcpSesReconnectCount, the first number
# of /proc/fs/cifs/Stats' "N session M share reconnects").
reconnects() {
    sed -n 's/^\([0-9]*\) session [0-9]* share reconnects$/\1/p' /proc/fs/cifs/Stats
}

t_umount() {
    umount "/mnt/$1"
}

# A uid without a key makes request_key() call /sbin/request-key, which keyutils installs and which finds no rule
# for a "logon" key (request-key.conf has none; cifs-utils adds cifs.spnego and cifs.idmap only), so the key is
# refused. The guest has no keyutils: this stands in for it (without it the upcall fails with ENOENT, which is
# what the uid would then see).
printf '#!/bin/sh\n# no rule for this key\nexit 1\n' >/bin/request-key
chmod 755 /bin/request-key

for run in smbsrv samba; do
    port=$SERVER_PORT
    [ "$run" = smbsrv ] || port=$SAMBA_PORT
    step "multiuser/mount-$run" t_mount "$run" "$port" 0
    step "multiuser/$run" t_users "$run"
    step "multiuser/burst-$run" t_burst "$run"
    step "multiuser/umount-$run" t_umount "$run"
    # A new connection with leases, hence durable handles, for the cut.
    step "multiuser/mount-leases-$run" t_mount "$run" "$port" 1
    expect_kernel_errors_begin "multiuser_cut"
    step "multiuser/cut-$run" t_cut "$run"
    expect_kernel_errors_end "multiuser_cut"
    step "multiuser/umount-leases-$run" t_umount "$run"
done
for run in smbsrv samba; do
    [ -f "/tmp/$run.out" ] && sed "s/^/$run /" "/tmp/$run.out"
done
echo "SMBTEST-SUITE-DONE"
exit "$STEP_FAILURES"
