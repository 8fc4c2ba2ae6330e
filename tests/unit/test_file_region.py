"""A Fetch's records as regions of segment files: sent with sendfile to a plain socket, in order
with the fields around them, to a consumer slower than the broker; refused rather than sent wrong
when the file changed under them."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
import uvloop

from odradek.log.file_handles import FileHandle, OpenFiles
from odradek.protocol.file_region import FileRegion, RegionGone
from odradek.server.region_writer import RegionWriter, read_regions


def region_of(handle: FileHandle, position: int, length: int) -> FileRegion:
    with handle:
        return FileRegion(handle, position, length, handle.identity)


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(bytes(range(256)) * 40_000)  # 10 MB
    return path


def test_a_region_reads_and_sends_its_bytes(data_file):
    handle = FileHandle(data_file, OpenFiles(4))
    region = region_of(handle, 1000, 70_000)
    expected = data_file.read_bytes()[1000:71_000]
    assert len(region) == 70_000 and region.read() == expected
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        fd = region.pin()
        sent = region.send(left.fileno(), fd, 0)
        region.unpin()
        assert 0 < sent <= 70_000
        assert right.recv(sent, socket.MSG_WAITALL) == expected[:sent]
    assert handle.pins == 0


def test_a_region_of_a_truncated_file_is_refused(data_file):
    handle = FileHandle(data_file, OpenFiles(4))
    region = region_of(handle, 5_000_000, 100_000)
    os.truncate(data_file, 5_050_000)  # a follower cut its log back after the read
    with pytest.raises(RegionGone):
        region.read()
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        fd = region.pin()
        sent = region.send(left.fileno(), fd, 0)
        assert sent == 50_000
        with pytest.raises(RegionGone):
            region.send(left.fileno(), fd, sent)
        region.unpin()


def test_a_region_of_a_deleted_or_replaced_file_is_refused(data_file):
    handle = FileHandle(data_file, OpenFiles(4))
    region = region_of(handle, 0, 100)
    handle.close()  # evicted from the open files
    data_file.rename(data_file.with_suffix(".old"))
    data_file.write_bytes(b"x" * 1000)  # another file under the name
    with pytest.raises(RegionGone, match="replaced"):
        region.read()
    handle.close()
    data_file.unlink()
    with pytest.raises(RegionGone, match="deleted"):
        region.read()
    assert not data_file.exists(), "a region never creates the file it came from"


def run_with_region_writer(respond, read):
    """On a uvloop: a server whose one connection has a 64 KiB send buffer (smaller than a large
    region, so the writer waits for room) and a RegionWriter; respond(sender, writer) answers it,
    then both are closed. read(reader, writer) is the client; its result is returned."""

    async def main():
        async def serve(reader, writer):
            writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sender = RegionWriter(writer.transport)
            try:
                await respond(sender, writer)
            finally:
                sender.close()
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await read(reader, writer)
        finally:
            writer.close()
            server.close()

    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_a_response_reaches_a_slow_reader_whole_and_in_order(data_file):
    """Fields, a region larger than any socket buffer, thousands of small fields (more than one
    writev takes), a small region, twice over one connection: the reader, taking its time, gets
    exactly those bytes."""
    handle = FileHandle(data_file, OpenFiles(4))
    content = data_file.read_bytes()
    chunks = [b"head", region_of(handle, 0, 6_000_000), *(b"%05d" % i for i in range(3000)),
              region_of(handle, 7_000_000, 5_000), b"tail"]
    expected = b"".join(read_regions(chunks))
    assert expected[4:6_000_004] == content[:6_000_000]

    async def respond(sender, writer):
        await sender.write(chunks)
        await sender.write(chunks)  # the socket watched again for the second response
        writer.write(b"!")  # a later answer, through the transport, comes after
        await writer.drain()

    async def read_slowly(reader, writer) -> bytes:
        data = bytearray()
        while piece := await reader.read(200_000):
            data += piece
            await asyncio.sleep(0.002)  # slower than the broker sends
        return bytes(data)

    got = run_with_region_writer(respond, read_slowly)
    assert got == expected + expected + b"!"
    assert handle.pins == 0


def test_a_reader_that_leaves_mid_response_ends_the_write_and_frees_the_file(data_file):
    """The consumer closes its socket while a large region waits for room: the write fails with a
    connection error (the connection is then closed) and the segment file is no longer held."""
    handle = FileHandle(data_file, OpenFiles(4))
    chunks = [b"head", region_of(handle, 0, 6_000_000)]
    outcome: list = []

    async def respond(sender, writer):
        try:
            await sender.write(chunks)
            outcome.append(None)
        except ConnectionError as error:
            outcome.append(error)

    async def leave_early(reader, writer):
        await reader.read(100_000)
        writer.transport.abort()  # gone, with 6 MB still owed
        for _ in range(1000):  # the server notices within 10 s
            if outcome:
                return
            await asyncio.sleep(0.01)

    run_with_region_writer(respond, leave_early)
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionError)
    assert handle.pins == 0
