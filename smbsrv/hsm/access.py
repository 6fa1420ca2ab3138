"""The command path's view of placeholders: the few calls READ, WRITE, SET_INFO and COPYCHUNK make.

Each handler calls in once, where an open's data is first touched, and only on a share with a provider. A
handle whose file is not a placeholder is remembered with the file's ctime, so later requests cost one fstat:
a file only becomes a placeholder through `smbsrv hsm release`, which needs a write lease (refused while the
server holds the file open for writing, and, on kernels that count readers (CONFIG_IMA, as Debian's), for
reading too) and which changes the ctime (the mark, the punched data) where it does get through.

On a placeholder the request goes async ([MS-SMB2] 3.3.4.2: an interim STATUS_PENDING, the final answer when
the data is there), so a slow provider never holds the connection's other requests:
- READ of a placeholder larger than `hsm_range_first_bytes`, or through a handle opened with
  FILE_OPEN_NO_RECALL: the requested range is fetched from the provider and answered at once; the whole file
  hydrates in the background (not for NO_RECALL, which must not recall, [MS-SMB2] 2.2.13);
- everything else waits for the one hydration of the file, then runs as if the file had always been local.
Also in the middle of a compound, where requests that may wait for ever fail with STATUS_INTERNAL_ERROR
(GoAsync.holds_chain, protocol/connection.py): the related requests after it wait for its answer.
CREATE never hydrates, and neither does any metadata operation: they do not call in here.

A provider that cannot be reached answers STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING, one that answers wrongly (object
missing, checksum mismatch) STATUS_CLOUD_FILE_UNSUCCESSFUL ([MS-ERREF] 2.3.1); the file stays a placeholder.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smbsrv.errors import SmbError
from smbsrv.fs import identity
from smbsrv.fs.errno_map import status_for_errno
from smbsrv.hsm import mark as marks
from smbsrv.hsm.hydrate import Hydration, Hydrator, set_placeholder_hint
from smbsrv.hsm.providers import Provider, ProviderError, ProviderUnavailable
from smbsrv.protocol.reply import GoAsync, Reply
from smbsrv.wire.constants import FILE_OPEN_NO_RECALL, FILE_WRITE_DATA
from smbsrv.wire.status import NtStatus

if TYPE_CHECKING:
    from smbsrv.config import ShareConfig
    from smbsrv.protocol.context import RequestContext
    from smbsrv.protocol.objects import Open

log = logging.getLogger(__name__)

hydrator = Hydrator()
# A ranged READ this close ahead of a hydration in flight waits for it instead of fetching the range itself.
_FOLLOW_BYTES = 64 * 1024 * 1024
_FOLLOW_POLL_S = 0.002
_providers: dict[Any, Provider] = {}
# Handles known to be on a file that is not a placeholder, with the ctime that was true for (module docstring).
_local: weakref.WeakKeyDictionary[Open, int] = weakref.WeakKeyDictionary()


def make_provider(share: ShareConfig) -> Provider:
    if share.hsm_provider == "directory":
        from smbsrv.hsm.providers.directory import DirectoryProvider

        return DirectoryProvider(share.hsm_id, share.hsm_directory)
    from smbsrv.hsm.providers.s3 import S3Provider

    return S3Provider(share.hsm_id, endpoint=share.hsm_s3_endpoint, bucket=share.hsm_s3_bucket,
                      region=share.hsm_s3_region, prefix=share.hsm_s3_prefix,
                      credentials_file=share.hsm_s3_credentials_file)


def provider_for(share: ShareConfig, state_dir: str = "") -> Provider:
    """The share's provider, made once per share configuration (a reload with other keys makes a new one)."""
    key = (share.hsm_provider, share.hsm_id, share.hsm_directory, share.hsm_s3_endpoint, share.hsm_s3_bucket,
           share.hsm_s3_region, share.hsm_s3_prefix, share.hsm_s3_credentials_file)
    provider = _providers.get(key)
    if provider is None:
        with identity.as_server():
            provider = _providers[key] = make_provider(share)
            if state_dir and not hydrator.progress_dir:
                progress = os.path.join(os.path.abspath(state_dir), "hsm", "inflight")
                os.makedirs(progress, mode=0o700, exist_ok=True)
                hydrator.progress_dir = progress
    return provider


def status_of(exc: BaseException) -> NtStatus:
    if isinstance(exc, ProviderUnavailable):
        return NtStatus.STATUS_CLOUD_FILE_PROVIDER_NOT_RUNNING
    if isinstance(exc, ProviderError | marks.MarkCorrupt):
        return NtStatus.STATUS_CLOUD_FILE_UNSUCCESSFUL
    if isinstance(exc, OSError) and exc.errno:
        return status_for_errno(exc.errno)
    return NtStatus.STATUS_CLOUD_FILE_UNSUCCESSFUL


def _placeholder(ctx: RequestContext, open_: Open) -> tuple[marks.Mark, Provider] | None:
    """The mark and provider of the handle's file, None when it is local (and then remembered). A named
    stream's data is an xattr of the file (fs/streams.py), never the placeholder's content: nothing to fetch,
    and a truncation through it must not touch the file's mark."""
    if open_.stream is not None:
        return None
    try:
        ctime_ns = os.fstat(open_.handle.fd).st_ctime_ns
        if _local.get(open_) == ctime_ns:
            return None
        with identity.as_server():
            mark = marks.read(open_.handle.fd)
    except (OSError, marks.MarkCorrupt) as exc:
        raise SmbError(status_of(exc)) from None
    if mark is None:
        _local[open_] = ctime_ns
        return None
    assert ctx.tree is not None
    share = ctx.tree.share
    if mark.provider != share.hsm_id:
        log.warning("hsm: %s names provider %r, share %s has %r", "/".join(open_.path_components),
                    mark.provider, share.name, share.hsm_id)
        raise SmbError(NtStatus.STATUS_CLOUD_FILE_UNSUCCESSFUL)
    return mark, provider_for(share, ctx.connection.server.config.state_dir)


def _start(open_: Open, mark: marks.Mark, provider: Provider) -> Hydration:
    """The file's hydration (started or joined), registered on its FileState while it runs."""
    with identity.as_server():
        hydration = hydrator.start(open_.handle.fd, open_.handle.key, mark, provider, "/".join(open_.path_components))
    state = open_.file
    if state is not None and state.hydration is not hydration:
        state.hydration = hydration
        loop = asyncio.get_running_loop()

        def finished(_future: object) -> None:
            if state.hydration is hydration:
                state.hydration = None

        def on_done(future: object) -> None:  # in the worker thread that finished it
            with contextlib.suppress(RuntimeError):  # the loop is gone: the server is stopping
                loop.call_soon_threadsafe(finished, future)

        hydration.future.add_done_callback(on_done)
    return hydration


def _hydrate_then(open_: Open, mark: marks.Mark, provider: Provider,
                  resume: Callable[[], Any]) -> GoAsync:
    hydration = _start(open_, mark, provider)

    async def completion() -> bytes | Reply:
        try:
            await asyncio.wrap_future(hydration.future)
        except Exception as exc:  # noqa: BLE001  (every failure of the fetch is one of the statuses)
            raise SmbError(status_of(exc)) from None
        if open_.closed:
            raise SmbError(NtStatus.STATUS_FILE_CLOSED)
        try:
            result = resume()
        except GoAsync as again:  # another placeholder in the same request (COPYCHUNK's other file)
            return await again.completion()  # type: ignore[no-any-return]
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    return GoAsync(completion, holds_chain=True)  # a fetch ends: in a compound the requests after it wait


def before_data_access(ctx: RequestContext, open_: Open, resume: Callable[[], Any]) -> None:
    """WRITE, truncation to a non-zero size, COPYCHUNK (source and target): returns at once for a local file;
    for a placeholder raises GoAsync, whose completion hydrates and then calls `resume()` (the handler
    again) for the answer."""
    found = _placeholder(ctx, open_)
    if found is not None:
        raise _hydrate_then(open_, *found, resume)


def before_copy(ctx: RequestContext, target: Open, source: Open | None, resume: Callable[[], Any]) -> None:
    """COPYCHUNK: the source (unknown resume key: None, the handler answers) and the target hydrate first."""
    for open_ in (source, target):
        if open_ is None:
            continue
        found = _placeholder(ctx, open_)
        if found is not None:
            def again() -> Any:
                before_copy(ctx, target, source, resume)
                return resume()

            raise _hydrate_then(open_, *found, again)


def before_read(ctx: RequestContext, open_: Open, offset: int, length: int, minimum_count: int,
                resume: Callable[[], Any]) -> None:
    """READ: as before_data_access, except that a large placeholder or a FILE_OPEN_NO_RECALL handle is
    answered from a ranged fetch (module docstring)."""
    found = _placeholder(ctx, open_)
    if found is None:
        return
    mark, provider = found
    assert ctx.tree is not None
    no_recall = bool(open_.create_options & FILE_OPEN_NO_RECALL)
    if not no_recall and mark.size <= ctx.tree.share.hsm_range_first_bytes:
        raise _hydrate_then(open_, mark, provider, resume)
    if not no_recall:
        _start(open_, mark, provider)
    count = max(0, min(length, mark.size - offset))
    if count == 0 or count < minimum_count:
        raise SmbError(NtStatus.STATUS_END_OF_FILE)

    async def ranged() -> Reply:
        from smbsrv.wire.readwrite import encode_read_response_header

        hydration = hydrator.get(open_.handle.key)
        loop = asyncio.get_running_loop()
        try:
            if hydration is not None and 0 < hydration.done_bytes and offset < hydration.done_bytes + _FOLLOW_BYTES:
                # Just ahead of a hydration that is streaming (a sequential reader right behind it): wait for
                # it to get there rather than ask the provider twice for the same bytes. Before its first
                # piece arrives, the range is fetched on its own: that is the quick first answer.
                while hydration.done_bytes < offset + count and not hydration.future.done():
                    await asyncio.sleep(_FOLLOW_POLL_S)
            if hydration is not None and (hydration.done_bytes >= offset + count or (
                    hydration.future.done() and hydration.future.exception() is None)):
                data = os.pread(open_.handle.fd, count, offset)
            else:
                # The default executor's threads start as the server (daemon.run); the hydrations' own
                # workers may all be busy with whole files.
                data = await loop.run_in_executor(None, provider.fetch_range, mark.key, offset, count)
        except Exception as exc:  # noqa: BLE001
            raise SmbError(status_of(exc)) from None
        if len(data) < max(minimum_count, 1):
            raise SmbError(NtStatus.STATUS_END_OF_FILE)
        return Reply(encode_read_response_header(len(data)), data)

    raise GoAsync(ranged, holds_chain=True)


def before_write(ctx: RequestContext, open_: Open, request: Any, handle: Callable[[Any, Any], Any]) -> None:
    """WRITE: as before_data_access; the payload is copied out of the receive buffer first, since that buffer
    is reused before the async answer."""
    found = _placeholder(ctx, open_)
    if found is not None:
        detached = dataclasses.replace(request, data=memoryview(bytes(request.data)))
        raise _hydrate_then(open_, *found, lambda: handle(ctx, detached))


def before_truncate(ctx: RequestContext, open_: Open, info: Any, resume: Callable[[], Any]) -> None:
    """SET_INFO FileEndOfFileInformation / FileAllocationInformation (`info`, decoded), before the handler
    changes the size. Without FILE_WRITE_DATA the handler refuses, and nothing hydrates. A new size equal to
    the placeholder's, or an allocation at or above it, touches no data. To zero, a placeholder simply becomes
    an empty local file (nothing to fetch; the truncation first, then the mark goes, so a crash between
    leaves a placeholder); to any other size it hydrates first."""
    if not open_.granted_access & FILE_WRITE_DATA:
        return
    found = _placeholder(ctx, open_)
    if found is None:
        return
    mark = found[0]
    new_size = getattr(info, "end_of_file", None)
    if new_size is None:
        new_size = info.allocation_size
        if new_size >= mark.size:
            return
    if new_size == mark.size:
        return
    if new_size:
        raise _hydrate_then(open_, *found, resume)
    with identity.as_server():
        fd = os.open(f"/proc/self/fd/{open_.handle.fd}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
            marks.remove(fd)
            os.fsync(fd)
            set_placeholder_hint(fd, False)
        finally:
            os.close(fd)
    _local.pop(open_, None)
