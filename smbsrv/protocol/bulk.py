"""Where bulk I/O starts: one threshold for the transport and the READ and WRITE handlers.

A READ or WRITE that moves at least BULK_IO_BYTES (four credits' worth, [MS-SMB2] 3.3.5.2.5) is bulk:
- the transport folds a message this large into its signature while it arrives, and lets a lone WRITE this
  large be written while the next message is received (transport.py);
- WRITE copies its payload to the page cache in a worker thread (commands/write.py);
- READ sends its data with sendfile(2) when the response is neither signed nor sealed (commands/read.py), and
  reads it into a reused ReadBuffer (below) when it is signed.
Below it, the fixed costs of each (a streaming MAC, a thread hand-off, fstat + dup + sendfile) outweigh what
they save; above it, one pass over the data less is worth them.
"""

import asyncio
import ctypes

BULK_IO_BYTES = 256 * 1024


class ReadBuffer(bytearray):
    """The data of a large READ whose response is signed (a sealed one is copied into its transform anyway).
    It comes from READ_BUFFERS and goes back there once the transport has handed all of it to the socket: a
    fresh 8 MiB object per READ cost page faults and zeroing (the allocator gave the heap's top back between
    READs; 212,000 faults in 4 s of 8 parallel readers) and, on these VMs, host faults on pages the balloon
    had taken back."""

    __slots__ = ()


class _ReadBuffers:
    """A few ReadBuffers for reuse, shared by every connection (only the event loop thread uses them). They are
    dropped once a whole _IDLE_S period passed without a large READ (1-2 s after the last), and the heap
    trimmed, so an idle server does not keep them for nothing."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.free: list[ReadBuffer] = []
        self._used = False
        self._idle_check: asyncio.TimerHandle | None = None

    def take(self, length: int) -> ReadBuffer:
        self._used = True
        for index, buffer in enumerate(self.free):
            if len(buffer) == length:
                return self.free.pop(index)
        return ReadBuffer(length)

    def give(self, buffer: ReadBuffer) -> None:
        """Keep `buffer` for a later READ of the same length. Called by the one owner of a buffer nobody
        reads any more: the READ handler when it does not use it, else transport.Outbox once all of it is in
        the socket (a response that is encrypted or compounded is copied, and its buffer simply dropped)."""
        if len(self.free) == self.keep:
            self.free.pop(0)
        self.free.append(buffer)
        if self._idle_check is None:
            try:
                self._idle_check = asyncio.get_running_loop().call_later(_IDLE_S, self._drop_if_idle)
            except RuntimeError:  # no event loop (a sans-IO caller): nothing to drop them later
                pass

    def _drop_if_idle(self) -> None:
        self._idle_check = None
        if self._used:
            self._used = False
            self._idle_check = asyncio.get_running_loop().call_later(_IDLE_S, self._drop_if_idle)
        else:
            self.free.clear()
            _return_free_heap()


def _return_free_heap() -> None:
    """Hand the allocator's free memory back to the system: glibc keeps freed 8 MiB buffers that are not at the
    top of its heap, so a server idle after a burst of large READs stayed ~30 MiB larger than before them (8
    parallel readers, 74 MiB resident 13 s later against 42 without the pool; 41 with this trim, 25 s later).
    malloc_trim is glibc's; elsewhere nothing is done."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (AttributeError, OSError):
        pass


# Short: a client reading continuously keeps the buffers, and making two again costs ~1-2 ms of page faults,
# while a server that just served a burst of large READs otherwise held ~30 MiB more for seconds (scripts/bench
# idle_conns right after parallel_read: 67-97 MiB with 5 s, 50 with 0.5 s; 55 before the pool).
_IDLE_S = 1.0
# Two 8 MiB READs' worth. Page faults in 4 s of 8 parallel readers: 212,000 with no reuse, 74,000 keeping 2
# buffers, 39,000 keeping 4; throughput and server CPU did not differ beyond noise between 2 and 4 (A/B, 6
# rounds each), and 4 kept 16 MiB more resident after every bulk transfer.
READ_BUFFERS = _ReadBuffers(2)
