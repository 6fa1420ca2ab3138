"""Benchmark of smbsrv against Debian's Samba on one machine; entry point scripts/bench (benchmarks.bench)."""
