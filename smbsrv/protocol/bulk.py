"""Where bulk I/O starts: one threshold for the transport and the READ and WRITE handlers.

A READ or WRITE that moves at least BULK_IO_BYTES (four credits' worth, [MS-SMB2] 3.3.5.2.5) is bulk:
- the transport folds a message this large into its signature while it arrives, and lets a lone WRITE this
  large be written while the next message is received (transport.py);
- WRITE copies its payload to the page cache in a worker thread (commands/write.py);
- READ sends its data with sendfile(2) when the response is neither signed nor sealed (commands/read.py).
Below it, the fixed costs of each (a streaming MAC, a thread hand-off, fstat + dup + sendfile) outweigh what
they save; above it, one pass over the data less is worth them.
"""

BULK_IO_BYTES = 256 * 1024
