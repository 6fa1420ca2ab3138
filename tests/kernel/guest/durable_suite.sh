# cifs.ko keeps writing through a durable handle across a cut TCP connection, run as /test.sh in the guest by
# tests/kernel/test_cifs_durable.py.
#
# A file is opened for writing and written; at "SMBTEST-MARK cut" the host drops the relayed TCP connection (both
# ends at once, as a network failure would). The program's next write and its close must succeed once cifs.ko has
# reconnected (it reopens the file with DH2C), and the data must be whole. Settings (from /run-env.sh):
# SERVER_IP SERVER_PORT SMB_USER SMB_PASS SMB_SHARE.

. /lib/smbtest.sh

MNT=/mnt
exec 9>&1

mount_cifs() {
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1,echo_interval=1"
}

write_across_cut() {
    exec 3>"$MNT/durable.txt"
    printf 'written before the cut\n' >&3
    # The first write reaches the server (fsync), so the reopened handle must carry it on.
    sync "$MNT/durable.txt" 2>/dev/null || sync
    echo "SMBTEST-MARK cut" >&9
    # The host cuts the connection when it reads the mark; cifs.ko notices (echo_interval=1) and reconnects.
    sleep 5
    printf 'written after the reconnect\n' >&3
    exec 3>&-
    sync
    expect_eq "content" "$(cat "$MNT/durable.txt")" "$(printf 'written before the cut\nwritten after the reconnect')"
}

step mount mount_cifs
expect_kernel_errors_begin durable-cut
step write_across_cut write_across_cut
expect_kernel_errors_end durable-cut
step umount umount "$MNT"
