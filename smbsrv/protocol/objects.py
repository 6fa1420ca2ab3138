"""Server state objects, named as in [MS-SMB2] 3.3.1: Session, TreeConnect, Open."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smbsrv.files import write_time
from smbsrv.fs.handle import FileHandle, StreamHandle

if TYPE_CHECKING:
    import os

    from smbsrv.config import ShareConfig
    from smbsrv.fs.fileinfo import FileInfo


@dataclass(eq=False)
class Channel:
    """[MS-SMB2] 3.3.1.8: one connection of a session. The first channel signs with Session.SigningKey (its
    Channel.SigningKey is that key); a bound channel has its own, derived from its binding's authentication
    ([MS-SMB2] 3.3.5.5.3) and, on 3.1.1, the binding's preauth hash."""

    connection: Any  # protocol.connection.Connection
    signer: Any = None  # crypto.signing.Signer of a bound channel; None: the session's signer
    bound: bool = False  # the binding completed (or this is the session's first channel)
    exchange: Any = None  # the binding's authentication exchange while it runs
    preauth_hash: bytes | None = None  # the binding's preauth integrity hash (3.1.1), folded like a session's


@dataclass(eq=False)
class Session:
    session_id: int
    state: str = "in_progress"  # in_progress | valid | expired
    user: Any = None  # smbsrv.auth.users.User, or None for guest/anonymous
    is_guest: bool = False
    is_anonymous: bool = False
    session_key: bytes | None = None
    signer: Any = None  # crypto.signing.Signer once keys exist
    signing_required: bool = False
    encrypt_data: bool = False
    cipher: Any = None
    application_key: bytes | None = None
    preauth_hash: bytes | None = None
    exchange: Any = None  # the in-progress authentication exchange
    uid: int = -1
    gid: int = -1
    groups: tuple[int, ...] = ()
    tree_connects: dict[int, TreeConnect] = field(default_factory=dict)
    opens: dict[int, Open] = field(default_factory=dict)
    next_tree_id: int = 1
    # What a binding must match ([MS-SMB2] 3.3.5.5.2): the first connection's dialect, signing algorithm (the
    # one in use: HMAC-SHA256 on 2.x, AES-CMAC on 3.0/3.0.2 or 3.1.1 without a signing context) and cipher.
    dialect: int = 0
    signing_algorithm: int = 0
    cipher_id: int = 0
    # [MS-SMB2] 3.3.1.8 Session.ChannelList by Connection.connection_id; a session lives while one channel does.
    channels: dict[int, Channel] = field(default_factory=dict)
    # Async requests whose channel dropped while the session lived on: they run on, as on Samba 4.17 (a replay
    # of such a CREATE on another channel must find it still pending), until the session ends.
    orphaned_requests: set[Any] = field(default_factory=set)

    def signer_for(self, connection: Any) -> Any:
        """The signer of this session's messages on `connection` ([MS-SMB2] 3.3.4.1.1, 3.3.5.2.4): a bound
        channel's own key, else Session.SigningKey (the first channel, and a binding still running)."""
        channel = self.channels.get(connection.connection_id)
        if channel is not None and channel.signer is not None:
            return channel.signer
        return self.signer

    def channel_connections(self) -> list[Any]:
        """Every connection the session is bound to (the first one included)."""
        return [channel.connection for channel in self.channels.values() if channel.bound]

    def live_connection(self, *, besides: Any = None) -> Any:
        """A bound channel's connection that is still up (other than `besides`), or None."""
        return next((c for c in self.channel_connections() if not c.closed and c is not besides), None)

    def keep_request(self, task: Any) -> None:
        """Let an async request of a dropped channel run on (its response has nowhere to go and is dropped):
        Samba 4.17 cancels a dying channel's requests only when the session's last channel goes
        (smb2_server.c smbXsrv_connection_shutdown_send, smbXsrv_session.c smbXsrv_session_remove_channel)."""
        self.orphaned_requests.add(task)
        task.add_done_callback(self.orphaned_requests.discard)

    def cancel_orphaned_requests(self) -> None:
        """The session ends: the requests its dropped channels left running end with it."""
        for task in list(self.orphaned_requests):
            task.cancel()
        self.orphaned_requests.clear()

    def drop_channel(self, connection: Any) -> bool:
        """`connection` is gone. True when the session lives on through another bound channel ([MS-SMB2]
        3.3.7.1: the session ends with its last channel); its opens then send breaks through a live one."""
        self.channels.pop(connection.connection_id, None)
        alive = self.live_connection()
        if alive is None:
            return False
        for open_ in self.opens.values():
            if open_.connection is connection:
                open_.connection = alive
        return True


@dataclass(eq=False)
class TreeConnect:
    tree_id: int
    session: Session
    share: ShareConfig
    share_root: Any  # fs.resolver.ShareRoot, None for IPC$
    maximal_access: int
    is_ipc: bool = False
    read_only: bool = False
    encrypt_data: bool = False
    reparse_store: Any = None  # fs.reparse_store.ReparseStore


@dataclass(eq=False)
class Open:
    """One handle. `handle` is where it sits on disk (fs/handle.py): its fd (an O_PATH fd for metadata-only opens,
    a real fd when data access was granted), its directory's fd, its name there and its file key."""

    file_id: tuple[int, int]
    tree: TreeConnect
    session: Session
    granted_access: int
    share_access: int
    create_options: int
    path_components: tuple[str, ...]
    handle: FileHandle = field(default_factory=FileHandle)
    is_directory: bool = False
    posix: bool = False
    delete_on_close: bool = False
    pipe: Any = None  # rpc NamedPipe for IPC$ opens
    file: Any = None  # files.FileState of handle.key while the open is registered in the server's FileTable
    link: Any = None  # files.table.Link: the name the open was made through (its delete-pending is there)
    name_link: Any = None  # for a named stream's open: the Link of its file's name, which the open holds too
    held_by: str = ""  # the SMB user whose max_opens_per_user count the open is in (files/table.py)
    connection: Any = None  # protocol.connection.Connection the open was made on (where its breaks go)
    # [MS-SMB2] 3.3.1.10 Open.OplockLevel/OplockState for opens without a lease; files/oplocks.py decides them.
    oplock_level: int = 0
    oplock_breaking_to: int = -1  # the level a break in progress goes to (-1: none in progress)
    oplock_deadline: float = 0.0
    lease: Any = None  # files.oplocks.Lease shared with the client's other opens of the same lease key
    channel_sequence: int = 0  # Open.ChannelSequence ([MS-SMB2] 3.3.5.2.10; commands/durable_handles.py)
    # The ParentLeaseKey the CREATE named ([MS-FSA] Open.ParentOplockKey): a change made through this open does
    # not break that lease of the client's on the parent directory (commands/oplock_break.py DirectoryChanges).
    parent_lease_key: bytes | None = None
    wrote: bool = False  # a WRITE went through this handle: its close settles the directory entry (leases)
    reparse_tag: int = 0
    position: int = 0
    mode_flags: int = 0
    enumeration: Any = None  # directory enumeration state
    closed: bool = False
    write_lock: Any = None  # asyncio.Lock serialising this handle's large writes (commands/write.py)
    ea_index: int = 0  # the next EA a FileFullEaInformation query continues from ([MS-FSCC] 2.4.15)
    user_set_change_time: bool = False  # Open.UserSetChangeTime ([MS-FSA] 2.1.5.14.2)
    # Open.LockSequenceArray ([MS-SMB2] 3.3.1.10): 64 entries of a LockSequenceNumber or 0xFF (none), made on
    # the first verified LOCK (commands/lock.py); it stays with the open across a durable reconnect.
    lock_sequences: bytearray | None = None

    @property
    def stream(self) -> str | None:
        """The named stream this is an open of (fs/streams.py), None for an open of a file or directory."""
        handle = self.handle
        return handle.stream if isinstance(handle, StreamHandle) else None

    @property
    def named_components(self) -> tuple[str, ...]:
        """The path of what this open is of, as names in replies and change notifications give it: a stream's
        is its file's with ":stream" added to the last component ([MS-FSCC] 2.1.4, 2.7.1)."""
        components, stream = self.path_components, self.stream
        if stream is None or not components:
            return components
        return components[:-1] + (f"{components[-1]}:{stream}",)

    def info(self, st: os.stat_result | None = None) -> FileInfo:
        """The file as this open's client sees it (fs/presented.py); `st` when the caller has just taken it."""
        info = self.handle.info(self.tree.share, self.tree.reparse_store, self.path_components, st)
        return write_time.shown(self, info)  # the LastWriteTime every open of the file sees

    def reparse_buffer(self) -> bytes | None:
        """The reparse buffer GET_REPARSE_POINT returns, None when the file is no reparse point."""
        return self.handle.reparse_buffer(self.tree.share, self.tree.reparse_store, self.path_components)
