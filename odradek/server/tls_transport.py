"""Server-side TLS through memory BIOs of our own, so that a failed handshake still sends its alert.

asyncio's TLS layer, and uvloop's, close the socket on a failed handshake without writing the alert
OpenSSL produced (`certificate_required` for a client without a certificate when
`ssl.client.auth=required`). A Java client then sees a dropped connection, takes it for a network
problem and retries until its timeout, where against Kafka it fails at once with
SslAuthenticationException. Here the records go through an ssl.SSLObject over two MemoryBIOs on a
plain TCP transport, and whatever OpenSSL wrote before failing is sent before the socket closes.

TlsLayer is the TCP transport's protocol and drives the SSLObject; TlsTransport is what the
connection's StreamReader and StreamWriter see. Encryption is OpenSSL's either way; this layer only
moves bytes between the BIOs and the socket, as asyncio's does.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

from odradek.server.connection import peer_name

log = logging.getLogger(__name__)

READ_BYTES = 256 * 1024  # plaintext taken from OpenSSL per read call


async def accept_tls(loop: asyncio.AbstractEventLoop, sock, context: ssl.SSLContext, app_protocol: asyncio.Protocol,
                     handshake_timeout_s: float) -> TlsTransport:
    """Run the server side of a TLS handshake on an accepted socket; the transport to give
    `app_protocol`'s StreamWriter. Raises the handshake's error (after sending OpenSSL's alert),
    ConnectionError if the client left, or TimeoutError after `handshake_timeout_s`."""
    done = loop.create_future()
    layer = TlsLayer(context, app_protocol, done)
    tcp, _ = await loop.connect_accepted_socket(lambda: layer, sock)
    try:
        await asyncio.wait_for(done, handshake_timeout_s)
    except (asyncio.TimeoutError, asyncio.CancelledError):
        tcp.abort()
        raise
    return layer.app_transport


class TlsLayer(asyncio.Protocol):
    def __init__(self, context: ssl.SSLContext, app_protocol: asyncio.Protocol, handshake_done: asyncio.Future) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self.context = context
        self.app_protocol = app_protocol
        self.app_transport = TlsTransport(self)
        self.tcp: asyncio.Transport | None = None
        self._handshake_done = handshake_done
        self._handshaking = True
        self._failed = False  # the handshake failed: the socket is closing, nothing more is read
        self._app_connected = False

    # --- from the TCP transport ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._failed:
            return
        self._incoming.write(data)
        if self._handshaking:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                return
            except Exception as error:  # noqa: BLE001 - any failure ends the connection, after the alert
                self._failed = True
                self.flush()
                self.tcp.close()  # after the buffered bytes (the alert) are sent
                self._fail_handshake(error)
                return
            self._handshaking = False
            self.flush()  # the server's last handshake records, and TLS 1.3 session tickets
            self._app_connected = True
            self.app_protocol.connection_made(self.app_transport)
            if not self._handshake_done.done():
                self._handshake_done.set_result(None)
        self._read_plaintext()

    def eof_received(self) -> bool:
        if self._handshaking:
            self._fail_handshake(ConnectionResetError("the client closed the connection during the TLS handshake"))
            return False
        if self._app_connected:
            self.app_protocol.eof_received()
        return False  # the TCP transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._handshaking:
            self._fail_handshake(exc or ConnectionResetError("the connection closed during the TLS handshake"))
        if self._app_connected:
            self._app_connected = False
            self.app_protocol.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._app_connected:
            self.app_protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._app_connected:
            self.app_protocol.resume_writing()

    # --- internals --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send what OpenSSL has written to the outgoing BIO (dropped once the socket is closing)."""
        if self._outgoing.pending:
            data = self._outgoing.read()
            if not self.tcp.is_closing():
                self.tcp.write(data)

    def _fail_handshake(self, error: Exception) -> None:
        self._handshaking = False
        if not self._handshake_done.done():
            self._handshake_done.set_exception(error)

    def _read_plaintext(self) -> None:
        chunks = []
        peer_closed = False
        error: ssl.SSLError | None = None
        try:
            while True:
                chunk = self.ssl_object.read(READ_BYTES)
                if not chunk:  # the client's close_notify
                    peer_closed = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            peer_closed = True
        except ssl.SSLError as corrupt:  # a corrupt or forged record: nothing more can be read
            error = corrupt
        for chunk in chunks:
            self.app_protocol.data_received(chunk)
        self.flush()  # reading can write too (a KeyUpdate's answer, or the alert of a bad record)
        if error is not None:
            self._failed = True
            peer = peer_name(self.tcp.get_extra_info("peername"))
            self.tcp.close()
            reason = error.reason or str(error)
            log.info("Closing TLS connection from %s: a record it sent was rejected (%s)", peer, reason)
            if self._app_connected:
                self._app_connected = False
                # for the connection, a peer that broke the session is one that went away
                self.app_protocol.connection_lost(ConnectionAbortedError(f"TLS record rejected: {reason}"))
        elif peer_closed and self._app_connected:
            self.app_protocol.eof_received()
            self.app_transport.close()


class TlsTransport(asyncio.Transport):
    """The plaintext side: writes are encrypted into the outgoing BIO and sent at once."""

    def __init__(self, layer: TlsLayer) -> None:
        super().__init__()
        self._layer = layer
        self._closing = False

    def get_extra_info(self, name: str, default=None):
        layer = self._layer
        if name == "sslcontext":
            return layer.context
        if name == "ssl_object":
            return layer.ssl_object
        if name == "peercert":
            return layer.ssl_object.getpeercert()
        if name == "cipher":
            return layer.ssl_object.cipher()
        if name == "compression":
            return layer.ssl_object.compression()
        return layer.tcp.get_extra_info(name, default)

    def write(self, data) -> None:
        if self._closing or not data:
            return
        self._encrypt(data)
        self._layer.flush()

    def writelines(self, list_of_data) -> None:
        if self._closing:
            return
        for data in list_of_data:
            if data:
                self._encrypt(data)
        self._layer.flush()

    def _encrypt(self, data) -> None:
        view = memoryview(data).cast("B")
        write = self._layer.ssl_object.write
        while view:
            view = view[write(view):]

    def can_write_eof(self) -> bool:
        return False

    def is_closing(self) -> bool:
        return self._closing or self._layer.tcp.is_closing()

    def close(self) -> None:
        """Send close_notify and close the socket once what is buffered is sent."""
        if self._closing:
            return
        self._closing = True
        try:
            self._layer.ssl_object.unwrap()
        except (ssl.SSLError, ValueError):  # it would wait for the client's close_notify: not needed
            pass
        self._layer.flush()
        self._layer.tcp.close()

    def abort(self) -> None:
        self._closing = True
        self._layer.tcp.abort()

    def get_write_buffer_size(self) -> int:
        return self._layer.tcp.get_write_buffer_size()

    def get_write_buffer_limits(self):
        return self._layer.tcp.get_write_buffer_limits()

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        # a client may leave between the handshake and this call; uvloop raises on a closed handle
        if not self._layer.tcp.is_closing():
            self._layer.tcp.set_write_buffer_limits(high, low)

    def pause_reading(self) -> None:
        if not self._layer.tcp.is_closing():
            self._layer.tcp.pause_reading()

    def resume_reading(self) -> None:
        if not self._layer.tcp.is_closing():
            self._layer.tcp.resume_reading()

    def is_reading(self) -> bool:
        return self._layer.tcp.is_reading()

    def get_protocol(self):
        return self._layer.app_protocol

    def set_protocol(self, protocol) -> None:
        self._layer.app_protocol = protocol
