# cifs.ko against placeholder files (smbsrv/hsm), run as /test.sh in the guest by tests/kernel/test_cifs_hsm.py.
#
# The share holds two placeholders the host released before the boot: listed.bin (only listed and stat'ed
# here: the host checks it was never fetched) and read.bin (read with cat: the host checks one fetch and the
# content). Settings (from /run-env.sh): SERVER_IP SERVER_PORT SMB_USER SMB_PASS SMB_SHARE; LISTED_SIZE,
# READ_SIZE, READ_MD5 as the host computed them.

. /lib/smbtest.sh

MNT=/mnt

mount_share() {
    mount -t cifs "//$SERVER_IP/$SMB_SHARE" "$MNT" \
        -o "ip=$SERVER_IP,port=$SERVER_PORT,username=$SMB_USER,password=$SMB_PASS,vers=3.1.1"
}

listing() {
    ls -l "$MNT"
    expect_eq "listed.bin size" "$(stat -c %s "$MNT/listed.bin")" "$LISTED_SIZE"
    expect_eq "read.bin size" "$(stat -c %s "$MNT/read.bin")" "$READ_SIZE"
}

read_placeholder() {
    expect_eq "read.bin md5" "$(md5_of "$MNT/read.bin")" "$READ_MD5"
    drop_caches
    expect_eq "read.bin md5 after drop_caches" "$(md5_of "$MNT/read.bin")" "$READ_MD5"
}

step mount mount_share
step listing listing
step read read_placeholder
step umount umount "$MNT"
