"""Placeholder files (HSM): content that lives with a provider and is hydrated on first data access.

- `mark`: the persistent mark (trusted.smbsrv.hsm) that makes a file a placeholder;
- `providers/`: where content lives (`directory`, `s3`) behind one interface;
- `hydrate`: one fetch per file, written into the same inode, committed by removing the mark;
- `access`: the calls the command handlers make where an open's data is first touched;
- `release`: turning a local file into a placeholder (`smbsrv hsm release`), and `smbsrv hsm status`;
- `fanotify`: FAN_PRE_ACCESS, so local processes hydrate placeholders too.
See docs/hsm.md.
"""
