"""Benchmark of smbsrv against Debian's Samba on one machine.

Run `scripts/bench` (full: 1 GiB files, 3 rounds, a few minutes) or `scripts/bench --quick` (small sizes,
one round, under a minute; what CI runs through tests/integration/test_bench_quick.py). Options:
`--json FILE`, `--only seq_write,list_dir`, `--rounds N`, `--servers samba` (one side only),
`--signing default|required|both`, `--server-arg=TEXT` (appended to the smbsrv command line; the
signing-required variant appends `--smbsrv-signing-arg`, by default "--signing required"), `--keep`
(keep the temporary directories with the server logs), `--tmpdir DIR` (where the shares live; the default
is the system temp directory, on this machine ext4; /dev/shm takes the filesystem out of the picture).

Method, in short:
- Both servers run at once on 127.0.0.1, each on a free port, serving sibling directories on the same
  filesystem; for each signing variant a fresh pair is started. Samba is `smbd --foreground
  --no-process-group -s CONF` with its own smb.conf, tdbsam user and state directories.
- Every round runs every workload against smbsrv, then Samba (A B A B ...). Tables show medians.
- The file workloads use smbclient (`-m SMB3`, dialect 3.1.1; `--client-protection=sign` in the signing
  variant). Each run is one smbclient session whose timed block is bracketed by time stamps taken by
  `date` processes that smbclient itself starts, so process start, connect and logoff are excluded
  (benchmarks.smbclient_session).
- Connect latency and idle connections use benchmarks.rawsmb, a small blocking SMB 3.1.1 client (about
  2 ms of client CPU per connect on this machine, recorded in the JSON as client_cpu_ms_per_connect).
- Server CPU is utime+stime of the server's process tree including reaped children (Samba forks a child per
  connection), read from /proc before and after the timed block; memory is the tree's summed RSS sampled
  every 100 ms, and for idle connections the proportional set size, which counts pages shared between
  Samba's processes once.
- The loopback TCP limit (one iperf3 stream) is printed as the physical reference.
"""
