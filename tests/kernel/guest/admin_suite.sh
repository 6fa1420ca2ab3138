# cifs.ko when the administrator closes its session (`smbsrv close-session`), run as /test.sh in the guest by
# tests/kernel/test_cifs_admin.py.
#
# A file is held open for writing and written; at "SMBTEST-MARK close-session" the host closes every session of
# the mount's user. The server closes the session's opens (durable ones too) and answers the next request on it
# STATUS_USER_SESSION_DELETED: cifs.ko must set the session up again by itself, reopen the held file by name
# (its durable reconnect finds nothing) and go on, with nothing lost. Settings (from /run-env.sh): SERVER_IP
# SERVER_PORT SMB_USER SMB_PASS SMB_SHARE ADMIN_MODE.

. /lib/smbtest.sh

MNT=/mnt
exec 9>&1

mount_cifs() {
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1,echo_interval=1"
}

prepare() {
    printf 'written before\n' >"$MNT/before.txt"
    mkdir "$MNT/dir"
}

across_close() {
    exec 3>"$MNT/held.txt"
    printf 'one\n' >&3
    sync "$MNT/held.txt" 2>/dev/null || sync
    echo "SMBTEST-MARK close-session" >&9
    # The host closes the session when it reads the mark and prints its answer: wait for it.
    sleep 3
    expect_eq "an old file" "$(cat "$MNT/before.txt")" "written before"
    printf 'written after\n' >"$MNT/dir/after.txt"
    expect_eq "a new file" "$(cat "$MNT/dir/after.txt")" "written after"
    expect_eq "the listing" "$(ls "$MNT" | tr '\n' ' ')" "before.txt dir held.txt "
    printf 'two\n' >&3
    exec 3>&-
    sync
    expect_eq "the held file" "$(cat "$MNT/held.txt")" "$(printf 'one\ntwo')"
}

# ADMIN_MODE=revoke: the host has removed the user from the users file and reloaded before it closes the
# session. cifs.ko's new logon is refused (STATUS_LOGON_FAILURE): every operation must fail at once, with
# EHOSTDOWN as cifs.ko reports a session it cannot set up, and none may hang or reach the share.
revoked() {
    echo "SMBTEST-MARK close-session" >&9
    sleep 3
    for attempt in read list create; do
        start=$(uptime_s)
        rc=0
        case $attempt in
            read) out=$(timeout 30 cat "$MNT/before.txt" 2>&1) || rc=$? ;;
            list) out=$(timeout 30 ls "$MNT" 2>&1) || rc=$? ;;
            create) out=$(timeout 30 touch "$MNT/after-revoke.txt" 2>&1) || rc=$? ;;
        esac
        took=$(awk -v a="$start" -v b="$(uptime_s)" 'BEGIN { printf "%d", b - a }')
        [ "$rc" -ne 0 ] || fail "$attempt succeeded for a revoked user: $out"
        [ "$rc" -ne 124 ] || fail "$attempt hung for 30 s"
        [ "$took" -lt 10 ] || fail "$attempt took $took s"
        case $out in *"Host is down"*) ;; *) fail "$attempt: $out" ;; esac
    done
}

step mount mount_cifs
step prepare prepare
if [ "${ADMIN_MODE:-}" = revoke ]; then
    expect_kernel_errors_begin admin_revoke
    step revoked revoked
    step umount umount -f "$MNT"
    expect_kernel_errors_end admin_revoke
else
    step across_close across_close
    step umount umount "$MNT"
fi
echo "SMBTEST-SUITE-DONE failures=$STEP_FAILURES"
