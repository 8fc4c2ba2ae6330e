"""Frames arrive whole and in order however TCP splits them, the broker reads at most a few KiB
ahead of the request it serves, and a client that leaves mid-frame ends the connection cleanly:
over a real loopback socket, on uvloop (the broker's loop) and on asyncio's own."""

from __future__ import annotations

import asyncio
import random
import socket
import struct

import pytest
import uvloop

from odradek.server.frame_protocol import SCRATCH_BYTES, FrameProtocol, unfilled_bytearray

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def _framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


async def _serve(handle):
    """A listener whose connections run `handle(frames, writer)`; returns (server, port)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FrameProtocol(handle), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _run(loop_name, main):
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", LOOPS)
@pytest.mark.parametrize("split", ["whole", "bytewise", "random"])
def test_frames_arrive_whole_and_in_order(loop_name, split):
    rng = random.Random(7)
    bodies = [b"", b"x", bytes(range(256)) * 3, b"a" * (SCRATCH_BYTES - 4), b"b" * SCRATCH_BYTES,
              bytes(rng.getrandbits(8) for _ in range(9 * SCRATCH_BYTES + 17)), b"c" * 1_000_000, b"tail"]
    if split == "bytewise":
        bodies = bodies[:6]  # a MiB one byte at a time takes too long
    stream = b"".join(_framed(body) for body in bodies)

    async def main():
        received = []
        done = asyncio.get_running_loop().create_future()

        async def handle(frames, writer):
            for _ in bodies:
                size = await frames.read_size()
                received.append(bytes(await frames.read_body(size)))
            writer.write(b"ok")
            await writer.drain()
            done.set_result(None)

        server, port = await _serve(handle)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if split == "whole":
            writer.write(stream)
        else:
            position = 0
            while position < len(stream):
                step = 1 if split == "bytewise" else rng.choice([1, 3, 5, 100, 4096, 70_000])
                writer.write(stream[position : position + step])
                await writer.drain()
                await asyncio.sleep(0)
                position += step
        await done
        assert await reader.readexactly(2) == b"ok"
        writer.close()
        server.close()
        return received

    assert _run(loop_name, main) == bodies


@pytest.mark.parametrize("size", [0, 1, 32 * 1024 - 1, 32 * 1024, 1 << 20])
def test_an_unfilled_bytearray_is_an_ordinary_bytearray_of_its_size(size):
    body = unfilled_bytearray(size)
    assert type(body) is bytearray and len(body) == size
    body[:] = b"\x07" * size
    assert body == b"\x07" * size
    body += b"!"  # owned and resizable like any other, once no view holds it
    assert len(body) == size + 1


@pytest.mark.parametrize("loop_name", LOOPS)
def test_reading_stops_while_the_connection_is_busy(loop_name):
    """A client that keeps sending while its request is served fills the kernel's buffers, not
    the broker's memory: no more than the scratch buffer is read ahead."""

    async def main():
        busy = asyncio.Event()
        release = asyncio.Event()
        served = asyncio.get_running_loop().create_future()
        protocols = []

        async def handle(frames, writer):
            protocols.append(frames)
            await frames.read_body(await frames.read_size())
            busy.set()
            await release.wait()
            while True:
                size = await frames.read_size()
                if size == 0:
                    served.set_result(None)
                    return
                await frames.read_body(size)

        server, port = await _serve(handle)
        client = socket.create_connection(("127.0.0.1", port))
        client.setblocking(False)
        client.send(_framed(b"first"))
        await busy.wait()
        flood = _framed(b"z" * 100) * 500_000  # 52 MB of small requests
        sent = refused = 0
        while sent < len(flood) and refused < 20:
            try:
                sent += client.send(flood[sent : sent + 1_000_000])
            except BlockingIOError:
                refused += 1
                await asyncio.sleep(0.01)
        protocol = protocols[0]
        read_ahead = protocol._end - protocol._start
        assert sent < len(flood), "the kernel's buffers should have filled"
        assert read_ahead <= SCRATCH_BYTES
        release.set()
        await asyncio.get_running_loop().sock_sendall(client, flood[sent:] + _framed(b""))
        await served
        client.close()
        server.close()

    _run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_leaving_mid_frame_ends_the_read(loop_name):
    async def main():
        outcome = asyncio.get_running_loop().create_future()

        async def handle(frames, writer):
            size = await frames.read_size()
            try:
                await frames.read_body(size)
            except asyncio.IncompleteReadError as error:
                outcome.set_result(error)
            writer.close()

        server, port = await _serve(handle)
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(struct.pack(">i", 100_000) + b"y" * 50_000)
        client.close()
        error = await outcome
        server.close()
        return error

    assert isinstance(_run(loop_name, main), asyncio.IncompleteReadError)
