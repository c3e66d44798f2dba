"""D-Bus over a pipe: what ``systemd-stdio-bridge`` on the far side of ``ssh`` speaks.

portablectl reaches a remote system bus as ``ssh HOST systemd-stdio-bridge``: the bridge is a
D-Bus server on its stdin/stdout (SASL ``ANONYMOUS``, as sd-bus allows for it) that forwards
every message to the remote's system bus, where it is a client already (it sent its own
``Hello``). :class:`PipeBus` does the client side with jeepney's message layer over the pipes of
any subprocess (:mod:`portable.remote.transport` starts it): authenticate, then method calls
with a deadline; D-Bus errors raise :class:`BusCallError`, a dead pipe :class:`BusClosed`.

Only blocking, one call at a time: signals and other messages that are not the awaited reply
are dropped (nothing here subscribes to any).
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from typing import Any

from jeepney import DBusAddress, HeaderFields, Message, MessageType, Parser, new_method_call
from jeepney.auth import BEGIN, make_auth_anonymous

__all__ = ["DBUS", "BusCallError", "BusClosed", "PipeBus"]

DBUS = DBusAddress("/org/freedesktop/DBus", "org.freedesktop.DBus", "org.freedesktop.DBus")


class BusClosed(OSError):
    """The pipe ended (or timed out) before the answer came: the bridge or the link died."""


class BusCallError(Exception):
    """A D-Bus error reply: ``name`` (``org.freedesktop.portable1.NoSuchImage`` ...), message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class PipeBus:
    """A D-Bus client connection over the stdin/stdout pipes of ``proc``."""

    def __init__(self, proc: subprocess.Popen[bytes], *, timeout: float = 60.0) -> None:
        if proc.stdin is None or proc.stdout is None:
            raise ValueError("the bridge process needs stdin and stdout pipes")
        self.proc = proc
        self.timeout = timeout
        self._in = proc.stdout.fileno()
        self._out = proc.stdin.fileno()
        self._parser = Parser()
        self._serial = 0
        self._buffer = b""

    # --- raw I/O ------------------------------------------------------------------------------

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._wait(self._out, write=True, deadline=deadline)
            try:
                view = view[os.write(self._out, view) :]
            except (BrokenPipeError, ConnectionResetError) as e:
                raise BusClosed(e.errno, "the connection closed") from None

    def _read(self, deadline: float) -> bytes:
        self._wait(self._in, write=False, deadline=deadline)
        data = os.read(self._in, 65536)
        if not data:
            raise BusClosed(0, "the connection closed")
        return data

    @staticmethod
    def _wait(fd: int, *, write: bool, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BusClosed(0, "timed out waiting for the remote bus")
        r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], left)
        if not r and not w:
            raise BusClosed(0, "timed out waiting for the remote bus")

    # --- protocol -----------------------------------------------------------------------------

    def authenticate(self) -> None:
        """SASL: ``AUTH ANONYMOUS`` (the bridge has no peer credentials to check), ``BEGIN``."""
        deadline = time.monotonic() + self.timeout
        self._write(b"\0" + make_auth_anonymous(), deadline)
        while b"\r\n" not in self._buffer:
            self._buffer += self._read(deadline)
        line, _, rest = self._buffer.partition(b"\r\n")
        if not line.startswith(b"OK "):
            raise BusClosed(
                0, f"the remote bus refused the connection ({line.decode(errors='replace')})"
            )
        self._write(BEGIN, deadline)
        self._buffer = b""
        if rest:
            self._parser.add_data(rest)

    def call(
        self,
        address: DBusAddress,
        method: str,
        signature: str | None = None,
        body: tuple[Any, ...] = (),
        *,
        timeout: float | None = None,
    ) -> tuple[Any, ...]:
        """Call ``method`` and return the reply's body; raise :class:`BusCallError` on an error."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        msg = new_method_call(address, method, signature, body)
        self._serial += 1
        serial = self._serial
        self._write(msg.serialise(serial=serial), deadline)
        while True:
            reply = self._next(deadline)
            if reply.header.fields.get(HeaderFields.reply_serial) != serial:
                continue  # a signal, or a late reply of an earlier call
            if reply.header.message_type is MessageType.error:
                name = str(reply.header.fields.get(HeaderFields.error_name, ""))
                text = str(reply.body[0]) if reply.body else name
                raise BusCallError(name, text)
            return tuple(reply.body)

    def _next(self, deadline: float) -> Message:
        while True:
            msg = self._parser.get_next_message()
            if msg is not None:
                return msg
            self._parser.add_data(self._read(deadline))

    def get_property(self, address: DBusAddress, interface: str, name: str) -> Any:
        props = DBusAddress(
            address.object_path, address.bus_name, "org.freedesktop.DBus.Properties"
        )
        (value,) = self.call(props, "Get", "ss", (interface, name))
        return value[1]  # jeepney gives a variant as (signature, value)

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
