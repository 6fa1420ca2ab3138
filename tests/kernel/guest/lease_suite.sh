# cifs.ko caching through smbsrv's leases, run as /test.sh in the guest by tests/kernel/test_cifs_leases.py.
#
# The host scrapes the server's metrics (READ bytes, CREATE requests) each time this script prints a
# "SMBTEST-MARK <name>" line, so each stretch between two marks can be counted; mark() then waits a moment for
# it. Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_USER SMB_PASS SMB_SHARE, BIG_MD5 (of the 16 MiB
# big.bin the host prepared).

. /lib/smbtest.sh

MNT=/mnt
MNT2=/mnt2
exec 9>&1

mark() {
    echo "SMBTEST-MARK $1" >&9
    sleep 1
}

show() {
    printf 'SHOW %s: %s\n' "$1" "$2" >&9
}

mount_cifs() {
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$1" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1$2"
}

# (a) the second read of a 16 MiB file comes from the page cache, kept valid by the lease.
read_twice() {
    mark read-begin
    expect_eq "first read" "$(md5_of "$MNT/big.bin")" "$BIG_MD5"
    expect_eq "second read" "$(md5_of "$MNT/big.bin")" "$BIG_MD5"
    mark read-end
}

# (b) 100 opens and closes of one file: cifs.ko keeps the handle (deferred close, which needs a handle lease)
# and reuses it instead of sending a CREATE each time.
open_close_loop() {
    cat "$MNT/small.txt" >/dev/null
    mark loop-begin
    i=0
    while [ "$i" -lt 100 ]; do
        exec 3<"$MNT/small.txt"
        exec 3<&-
        i=$((i + 1))
    done
    mark loop-end
}

# read_until MOUNT EXPECTED: the file's content once it is EXPECTED; how many 50 ms retries that took is
# shown (the break reaches cifs.ko's lease-break worker asynchronously, a few ms after the writer's reply). Without
# the break the old data would stay until the handle is closed and the attributes expire, seconds later.
read_until() {
    tries=0
    while [ "$(cat "$1/c.txt")" != "$2" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 20 ] || fail "$1/c.txt still '$(cat "$1/c.txt")' 1 s after the write, expected '$2'"
        sleep 0.05
    done
    show "retries for $2" "$tries"
}

# (c) two mounts with their own connections: the first caches c.txt, the second writes it (in place, then
# truncating); the first sees each new content at once, as its lease is broken.
coherent() {
    mkdir -p "$MNT2"
    mount_cifs "$MNT2" ",nosharesock"
    expect_eq "first mount reads" "$(cat "$MNT/c.txt")" "before"
    expect_eq "first mount reads again (cached)" "$(cat "$MNT/c.txt")" "before"
    printf 'after1' | dd of="$MNT2/c.txt" conv=notrunc 2>/dev/null
    read_until "$MNT" after1
    expect_eq "first mount reads again" "$(cat "$MNT/c.txt")" "after1"
    printf 'second' >"$MNT2/c.txt"
    read_until "$MNT" second
    printf 'third!' | dd of="$MNT/c.txt" conv=notrunc 2>/dev/null
    read_until "$MNT2" third!
    umount "$MNT2"
}

# (e) directory leases: a second listing of the share's root comes from cifs.ko's cache of the directory (no
# QUERY_DIRECTORY reaches the server between the marks); a file the host then creates locally (a process on the
# server, reported by the kernel change feed) breaks the lease, and the next listing shows it.
listing_cached() {
    ls -a "$MNT" >/dev/null
    ls -a "$MNT" >/dev/null
    mark dir-begin
    ls -a "$MNT" >/tmp/listing
    mark dir-end
    tries=0
    while ! ls -a "$MNT" | grep -qx local-new.txt; do
        tries=$((tries + 1))
        [ "$tries" -le 20 ] || fail "local-new.txt not listed 1 s after its create: $(ls -a "$MNT" | tr '\n' ' ')"
        sleep 0.05
    done
    show "listing retries for local-new.txt" "$tries"
}

# (d) issue 17: while this mount holds held.txt open, the host runs smbclient, a raw client with a byte-range
# lock and `smbsrv status`; it then creates status-done in the share (a local create, which breaks this
# client's lease on the share's root directory, so the name appears here).
status_view() {
    exec 4<"$MNT/held.txt"
    ls "$MNT" >/dev/null
    mark status
    tries=0
    while [ ! -e "$MNT/status-done" ]; do
        tries=$((tries + 1))
        [ "$tries" -le 600 ] || fail "status-done never appeared"
        sleep 0.1
    done
    show "status-done seen after polls" "$tries"
    exec 4<&-
}

step mount mount_cifs "$MNT" ""
step read_twice read_twice
step open_close_loop open_close_loop
step coherent coherent
step listing_cached listing_cached
step status status_view
step umount umount "$MNT"
