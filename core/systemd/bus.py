"""The D-Bus connection to the service manager, on jeepney's protocol layer.

:func:`open_system_bus` connects to the system bus (``Hello``, and PID 1 must be on it);
:meth:`Connection.open` with ``peer_to_peer=True`` connects to PID 1's private socket
(``/run/systemd/private``: no bus daemon, no ``Hello``), as ``systemctl`` can;
:meth:`Connection.over` authenticates on a socket already connected to something that speaks
D-Bus (``portable -H``: ``systemd-stdio-bridge`` at the far end of ssh,
:mod:`portable.remote.portabled`). Every call has a deadline, so a hung bus or manager makes a
call fail instead of hang: transport problems raise :class:`OSError` (:class:`TimeoutError` at
the deadline), a D-Bus error reply :class:`CallError`. :mod:`portable.systemd.manager` builds the
systemd API on it; nothing on the way to a local verb imports this module (it imports jeepney).
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from jeepney import DBusAddress, HeaderFields, Message, MessageType, Parser, new_method_call
from jeepney.auth import BEGIN, make_auth_anonymous, make_auth_external
from jeepney.bus import get_connectable_addresses

__all__ = [
    "DEFAULT_BUS_ADDRESS",
    "PRIVATE_SOCKET",
    "SYSTEMD_NAME",
    "CallError",
    "Connection",
    "Signal",
    "open_system_bus",
    "strerror",
]

DEFAULT_BUS_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
PRIVATE_SOCKET = "/run/systemd/private"

SYSTEMD_NAME = "org.freedesktop.systemd1"
_DBUS = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")
_DBUS_HELLO = (_DBUS.object_path, _DBUS.interface, "Hello")
_DBUS_GET_NAME_OWNER = (_DBUS.object_path, _DBUS.interface, "GetNameOwner", "s", (SYSTEMD_NAME,))
_DBUS_ADD_MATCH = (_DBUS.object_path, _DBUS.interface, "AddMatch", "s")
_PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"

# Calls sent ahead of their replies by Connection.call_many (a few hundred bytes each).
_PIPELINE_CHUNK = 256


# A NamedTuple, not a dataclass (~0.4 ms to build): every attach and detach imports this module.
class Signal(NamedTuple):
    """A D-Bus signal as :attr:`Connection.on_signal` gets it."""

    sender: str | None
    path: str | None
    interface: str | None
    member: str | None
    body: tuple[Any, ...]


class CallError(Exception):
    """PID 1 (or the bus) answered a method call with a D-Bus error."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def strerror(exc: BaseException) -> str:
    """A one-line reason, worded like systemd's (strerror) where there is an errno."""
    if isinstance(exc, TimeoutError):
        return os.strerror(errno.ETIMEDOUT)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _deadline_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


class Connection:
    """One authenticated D-Bus connection: method calls with deadlines, signals to a handler.

    Written on jeepney's protocol layer rather than its blocking connection, which always
    says ``Hello`` (wrong on the peer-to-peer private socket), waits for it without a timeout,
    and authenticates in a way PID 1's private socket can stall on (see :meth:`open`).
    """

    def __init__(self, sock: socket.socket, *, peer_to_peer: bool) -> None:
        self.sock = sock
        self.peer_to_peer = peer_to_peer
        self.on_signal: Callable[[Signal], None] | None = None
        # PID 1's unique name on the bus (None peer-to-peer): only its signals are passed on.
        self.systemd_sender: str | None = None
        self._parser = Parser()
        self._serial = 0
        self._closed = False

    @classmethod
    def open(cls, path: str, *, peer_to_peer: bool, timeout: float) -> Connection:
        """Connect to a unix socket (``\\0`` prefix: abstract) and authenticate (EXTERNAL)."""
        deadline = time.monotonic() + timeout
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return cls.over(sock, peer_to_peer=peer_to_peer, timeout=deadline - time.monotonic())

    @classmethod
    def over(
        cls, sock: socket.socket, *, peer_to_peer: bool, timeout: float, anonymous: bool = False
    ) -> Connection:
        """Authenticate on ``sock``, a stream already connected to a D-Bus server (closed if
        that fails): EXTERNAL, the uid the kernel vouches for; ``anonymous``: ANONYMOUS, for a
        server that can't see who we are (``systemd-stdio-bridge`` behind ssh, as sd-bus's
        client does for it)."""
        deadline = time.monotonic() + timeout
        mechanism = make_auth_anonymous() if anonymous else make_auth_external()
        try:
            # AUTH and BEGIN in one write, as sd-bus (systemctl) does. Sending BEGIN only after
            # the OK, as the protocol also allows, trips up PID 1's private socket (sd-bus
            # server, 252): when BEGIN and the first message arrive in one read, that message
            # is not processed until more data comes, and the call hangs.
            sock.settimeout(_deadline_left(deadline))
            sock.sendall(b"\0" + mechanism + BEGIN)
            buf = b""
            while b"\r\n" not in buf:
                sock.settimeout(_deadline_left(deadline))
                data = sock.recv(4096)
                if not data:
                    raise ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
                buf += data
                if len(buf) > 8192:
                    break
            line, _, rest = buf.partition(b"\r\n")
            if not line.startswith(b"OK "):
                reply = line[:80].decode("ascii", "replace")
                raise ConnectionRefusedError(
                    errno.EACCES, f"authentication rejected (server said {reply!r})"
                )
        except BaseException:
            sock.close()
            raise
        conn = cls(sock, peer_to_peer=peer_to_peer)
        conn._parser.add_data(rest)  # messages may follow the OK at once
        return conn

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    def _send(self, msg: Message, deadline: float) -> int:
        self._serial += 1
        data = msg.serialise(serial=self._serial)
        try:
            self.sock.settimeout(_deadline_left(deadline))
            self.sock.sendall(data)
        except OSError:
            # Part of a message may have gone out: the stream can't be trusted any more.
            self._closed = True
            raise
        return self._serial

    def _receive(self, deadline: float) -> Message:
        while True:
            msg = self._parser.get_next_message()
            if msg is not None:
                return msg
            self.sock.settimeout(_deadline_left(deadline))
            data = self.sock.recv(65536)
            if not data:
                self._closed = True
                raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
            self._parser.add_data(data)

    def _dispatch(self, msg: Message) -> None:
        if msg.header.message_type != MessageType.signal or self.on_signal is None:
            return
        fields = msg.header.fields
        sender = fields.get(HeaderFields.sender)
        if self.systemd_sender is not None and sender != self.systemd_sender:
            return
        self.on_signal(
            Signal(
                sender=sender,
                path=fields.get(HeaderFields.path),
                interface=fields.get(HeaderFields.interface),
                member=fields.get(HeaderFields.member),
                body=tuple(msg.body),
            )
        )
        # Anything else that is not our reply (late replies of calls that timed out,
        # NameAcquired, calls to us) is of no interest.

    def call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
        *,
        timeout: float,
        destination: str = SYSTEMD_NAME,
    ) -> tuple[Any, ...]:
        """Call a method and return the reply's body; a D-Bus error raises :class:`CallError`.

        Transport problems raise OSError (TimeoutError when the deadline passes).
        """
        deadline = time.monotonic() + timeout
        serial = self._send_call(path, interface, member, signature, body, deadline, destination)
        return self._reply(serial, deadline)

    def _send_call(
        self,
        path: str,
        interface: str,
        member: str,
        signature: str | None,
        body: tuple[Any, ...],
        deadline: float,
        destination: str,
    ) -> int:
        """Send a method call; its serial, for :meth:`_reply`."""
        if self._closed:
            raise ConnectionResetError(errno.ENOTCONN, "Connection was closed")
        msg = new_method_call(DBusAddress(path, destination, interface), member, signature, body)
        if self.peer_to_peer:
            # Nobody routes on a direct connection; systemctl sends no destination there either.
            del msg.header.fields[HeaderFields.destination]
        return self._send(msg, deadline)

    def _reply(self, serial: int, deadline: float) -> tuple[Any, ...]:
        """The body of the reply to call ``serial``; a D-Bus error raises :class:`CallError`."""
        while True:
            reply = self._receive(deadline)
            if reply.header.fields.get(HeaderFields.reply_serial) != serial:
                self._dispatch(reply)
                continue
            if reply.header.message_type == MessageType.error:
                name = str(reply.header.fields.get(HeaderFields.error_name, ""))
                text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else name
                raise CallError(name, text.strip().replace("\n", " "))
            return tuple(reply.body)

    def call_many(
        self,
        calls: Sequence[tuple[str, str, str, str | None, tuple[Any, ...]]],
        *,
        timeout: float,
    ) -> list[tuple[Any, ...] | CallError]:
        """Several method calls to PID 1, ``(path, interface, member, signature, body)`` each,
        sent before any reply is read (one round trip instead of one per call; in chunks, so
        that neither side's socket buffer fills up); per call its reply's body or its error.

        Transport problems raise OSError (TimeoutError when the deadline passes).
        """
        if self._closed:
            raise ConnectionResetError(errno.ENOTCONN, "Connection was closed")
        deadline = time.monotonic() + timeout
        out: list[tuple[Any, ...] | CallError] = []
        for start in range(0, len(calls), _PIPELINE_CHUNK):
            serials: dict[int, int] = {}
            for i, (path, interface, member, signature, body) in enumerate(
                calls[start : start + _PIPELINE_CHUNK]
            ):
                msg = new_method_call(
                    DBusAddress(path, SYSTEMD_NAME, interface), member, signature, body
                )
                if self.peer_to_peer:
                    del msg.header.fields[HeaderFields.destination]
                serials[self._send(msg, deadline)] = i
            replies: list[tuple[Any, ...] | CallError | None] = [None] * len(serials)
            left = len(serials)
            while left:
                reply = self._receive(deadline)
                i = serials.pop(reply.header.fields.get(HeaderFields.reply_serial, -1), -1)
                if i < 0:
                    self._dispatch(reply)
                    continue
                left -= 1
                if reply.header.message_type == MessageType.error:
                    name = str(reply.header.fields.get(HeaderFields.error_name, ""))
                    body0 = reply.body[0] if reply.body else name
                    text = body0 if isinstance(body0, str) else name
                    replies[i] = CallError(name, text.strip().replace("\n", " "))
                else:
                    replies[i] = tuple(reply.body)
            out.extend(r for r in replies if r is not None)
        return out

    def get_property(
        self, path: str, interface: str, name: str, *, timeout: float, destination: str
    ) -> Any:
        """One D-Bus property of the object at ``path`` (errors as :meth:`call`)."""
        ((_, value),) = self.call(
            path,
            _PROPERTIES_IFACE,
            "Get",
            "ss",
            (interface, name),
            timeout=timeout,
            destination=destination,
        )
        return value

    def hello(self, timeout: float) -> None:
        """Join the bus (``Hello``) and learn PID 1's name on it (only its signals are passed
        on): OSError if either fails, PID 1 not being on the bus ``EHOSTUNREACH``.

        Both calls are sent before either reply is read (one round trip, as sd-bus does): the
        bus handles them in order, so ``GetNameOwner`` comes after ``Hello`` all the same.
        """
        bus = _DBUS.bus_name
        deadline = time.monotonic() + timeout
        hello = self._send_call(*_DBUS_HELLO, None, (), deadline, bus)
        owner_call = self._send_call(*_DBUS_GET_NAME_OWNER, deadline, bus)
        try:
            self._reply(hello, deadline)
        except CallError as exc:
            raise OSError(errno.EPROTO, f"Hello failed: {exc.message}") from exc
        try:
            (owner,) = self._reply(owner_call, time.monotonic() + timeout)
            self.systemd_sender = str(owner)
        except CallError as exc:
            # dbus runs but PID 1 is not (yet, or no longer) on it: the private socket
            # is the way in then.
            raise OSError(errno.EHOSTUNREACH, f"{SYSTEMD_NAME} is not on the bus") from exc

    def wait(self, deadline: float) -> None:
        """Receive and dispatch one message (TimeoutError when the deadline passes)."""
        self._dispatch(self._receive(deadline))

    def add_match(self, rule: str, *, timeout: float) -> None:
        """Ask the bus daemon to send us the signals ``rule`` matches (``AddMatch``; on the
        bus only: peer to peer, PID 1 sends its signals anyway)."""
        self.call(*_DBUS_ADD_MATCH, (rule,), timeout=timeout, destination=_DBUS.bus_name)


def open_system_bus(address: str, timeout: float) -> Connection:
    """Connect to the system bus, say Hello, and check that PID 1 is on it."""
    try:
        paths = list(get_connectable_addresses(address))
    except (RuntimeError, ValueError) as exc:
        raise OSError(errno.EINVAL, f"unsupported bus address: {exc}") from exc
    error: BaseException = OSError(errno.EINVAL, "no address")
    for path in paths:
        try:
            conn = Connection.open(path, peer_to_peer=False, timeout=timeout)
        except OSError as exc:
            error = exc
            continue
        try:
            conn.hello(timeout)
        except BaseException:
            conn.close()
            raise
        return conn
    raise error
