"""Chunk batches on the wire, encoded and decoded without building protobuf messages.

In: chunks as (id, payload, compressed, raw_size) with payloads as bytes or memoryviews.
Out: the protobuf wire bytes of a message whose field `field` is a `ChunkBatch`
(CaptureEvent.chunks and RestoreCommand.chunks are both field 3), byte for byte what
`SerializeToString` of the same message gives, and `serialize`, a gRPC request or
response serializer that passes such bytes through and serializes messages as usual.
`chunk_batch_deserializer` is the receiving half: such a message becomes a
`ChunkMessage` whose payloads are memoryviews into the received bytes; every other
message is parsed by its generated class.

Why: python-protobuf (upb) serializes a message holding megabytes of `bytes` fields at
about 1 GB/s (buffer growth and copies), which cost about 1.5 CPU-seconds per 1.6 GB
of chunk payloads on each side of a backup or restore. Here each payload is copied
once, by one `bytes.join`. Parsing copies each payload twice (into the message, then
out of it on access); the deserializer copies none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

from google.protobuf.message import DecodeError, Message

from ragbackup import errors

_LEN = 2  # wire type: length-delimited
_VARINT = 0
_CHUNK_ID = (1 << 3) | _LEN
_CHUNK_PAYLOAD = (2 << 3) | _LEN
_CHUNK_COMPRESSED = bytes([(3 << 3) | _VARINT, 1])
_CHUNK_RAW_SIZE = (4 << 3) | _VARINT
_BATCH_CHUNK = bytes([(1 << 3) | _LEN])

WireChunk = tuple[bytes, "bytes | memoryview", bool, int]  # (id, payload, compressed, raw_size)

# An agent naming this in HealthReply.features reads Entry.chunk_ids (the ids joined) in a
# Restore or Drill stream; a controller sends `chunks`, one field an id, to any other.
RESTORE_CHUNK_IDS = "restore-chunk-ids"
# An agent naming this reads an entry's chunk ids split over several entries (Entry.more_chunk_ids,
# entry_parts.py) in a Restore or Drill stream; any other gets each entry in one message.
ENTRY_PARTS = "entry-parts"
AGENT_FEATURES = (RESTORE_CHUNK_IDS, ENTRY_PARTS)


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _tag(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


def _chunk_parts(cid: bytes, payload: bytes | memoryview, compressed: bool, raw_size: int) -> tuple[list, int]:
    """Wire parts of one Chunk message (proto3: default values are omitted) and their length."""
    parts: list = []
    if cid:
        parts += [bytes((_CHUNK_ID,)) + varint(len(cid)), cid]
    if len(payload):
        parts += [bytes((_CHUNK_PAYLOAD,)) + varint(len(payload)), payload]
    if compressed:
        parts.append(_CHUNK_COMPRESSED)
    if raw_size:
        parts.append(bytes((_CHUNK_RAW_SIZE,)) + varint(raw_size))
    return parts, sum(len(p) for p in parts)


_VARINTS = [varint(n) for n in range(1 << 14)]  # lengths and sizes of small chunks: no varint() call each
_ID_HEAD = bytes((_CHUNK_ID, 32))  # chunk ids are 32 bytes (keyed BLAKE3)
_PAYLOAD_TAG = bytes((_CHUNK_PAYLOAD,))
_RAW_SIZE_TAG = bytes((_CHUNK_RAW_SIZE,))


def _small_varint(n: int) -> bytes:
    return _VARINTS[n] if n < 16384 else varint(n)


def encode_chunk_batch(field: int, chunks: Iterable[WireChunk]) -> bytes:
    """Wire bytes of a message whose only set field, number `field`, is a ChunkBatch of `chunks`.

    A chunk with a 32-byte id, a payload and a raw size (every chunk a restore sends) is
    framed with three buffers: a restore of 1 KiB records sends hundreds of thousands.
    """
    body: list = []
    append = body.append
    size = 0
    v = _small_varint
    for cid, payload, compressed, raw_size in chunks:
        plen = len(payload)
        if len(cid) != 32 or not plen or not raw_size:
            parts, n = _chunk_parts(cid, payload, compressed, raw_size)
            head = _BATCH_CHUNK + varint(n)
            body.append(head)
            body += parts
            size += len(head) + n
            continue
        plen_v = v(plen)
        tail = (_CHUNK_COMPRESSED + _RAW_SIZE_TAG if compressed else _RAW_SIZE_TAG) + v(raw_size)
        n = 35 + len(plen_v) + plen + len(tail)
        n_v = v(n)
        append(_BATCH_CHUNK + n_v + _ID_HEAD + cid + _PAYLOAD_TAG + plen_v)
        append(payload)
        append(tail)
        size += 1 + len(n_v) + n
    return b"".join([_tag(field, _LEN), varint(size), *body])


def serialize(message: Message | bytes) -> bytes:
    """gRPC serializer: pre-encoded bytes as they are, messages via SerializeToString."""
    if isinstance(message, bytes):
        return message
    return message.SerializeToString()


# --- decoding -------------------------------------------------------------------------

_FIXED64, _FIXED32 = 1, 5


class MalformedMessage(errors.UsageError, DecodeError):
    """A message received over gRPC does not parse (damaged, truncated or not ours)."""


class ViewChunk(NamedTuple):
    """A received Chunk whose payload is a view into the message's bytes (no copy).

    A named tuple, not a frozen dataclass: one is built for every chunk received (a
    restore of 1 KiB records receives hundreds of thousands), and a frozen dataclass's
    constructor cost 3-4 times as much.
    """

    id: bytes
    payload: memoryview
    compressed: bool
    raw_size: int


@dataclass(frozen=True, slots=True)
class ViewBatch:
    chunks: list[ViewChunk]


@dataclass(frozen=True, slots=True)
class ChunkMessage:
    """Stands in for a CaptureEvent or RestoreCommand whose oneof holds `chunks`."""

    chunks: ViewBatch

    def WhichOneof(self, group: str) -> str:  # noqa: N802 - the protobuf method it stands in for
        return "chunks"


def _varint_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it); MalformedMessage past `end` or beyond 64 bits."""
    value = shift = 0
    while pos < end and shift < 64:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return value, pos
        shift += 7
    raise MalformedMessage("truncated or overlong varint in a chunk batch")


def _field_end(buf: bytes, wire_type: int, pos: int, end: int) -> int:
    """Position after a field value of `wire_type` starting at `pos` (to skip unknown fields)."""
    if wire_type == _VARINT:
        return _varint_at(buf, pos, end)[1]
    if wire_type == _LEN:
        return _len_field(buf, pos, end)[1]
    if wire_type not in (_FIXED64, _FIXED32):
        raise MalformedMessage(f"unsupported wire type {wire_type} in a chunk batch")
    pos += 8 if wire_type == _FIXED64 else 4
    if pos > end:
        raise MalformedMessage("field runs past the end of a chunk batch")
    return pos


def _len_field(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of the length-delimited value whose length varint is at `pos`."""
    n, pos = _varint_at(buf, pos, end)
    if pos + n > end:
        raise MalformedMessage("field runs past the end of a chunk batch")
    return pos, pos + n


def _decode_chunk(buf: bytes, view: memoryview, pos: int, end: int) -> ViewChunk:
    """One Chunk message in buf[pos:end]; unknown fields are skipped, the last of a repeated one wins."""
    cid, payload, compressed, raw_size = b"", view[0:0], False, 0
    while pos < end:
        tag, pos = _varint_at(buf, pos, end)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == _LEN:
            start, pos = _len_field(buf, pos, end)
            if field == 1:
                cid = bytes(view[start:pos])
            elif field == 2:
                payload = view[start:pos]
        elif wire_type == _VARINT:
            value, pos = _varint_at(buf, pos, end)
            if field == 3:
                compressed = value != 0
            elif field == 4:
                raw_size = value & 0xFFFFFFFF  # uint32, as protobuf truncates it
        else:
            pos = _field_end(buf, wire_type, pos, end)
    return ViewChunk(cid, payload, compressed, raw_size)


_ID_TAG, _RAW_TAG, _COMPRESSED_TAG = _ID_HEAD[0], _RAW_SIZE_TAG[0], _CHUNK_COMPRESSED[0]


def _framed_chunk(buf: bytes, view: memoryview, pos: int, end: int) -> ViewChunk | None:
    """The Chunk in buf[pos:end] if it is framed as `encode_chunk_batch` frames a restore's
    chunks (32-byte id, payload, compressed flag if set, raw size, in that order); else None.

    Every field is read at the place that framing puts it, varints of up to two bytes
    inline: no loop over tags, no call a field (a restore of 1 KiB records receives
    hundreds of thousands of chunks; 2.6 us a chunk instead of 5.0, then less).
    """
    if end - pos < 38 or buf[pos] != _ID_TAG or buf[pos + 1] != 32 or buf[pos + 34] != _CHUNK_PAYLOAD:
        return None
    n, p = _short_varint(buf, pos + 35, end)
    q = p + n
    if q + 2 > end:
        return None
    compressed = buf[q] == _COMPRESSED_TAG and buf[q + 1] == 1
    if compressed:
        q += 2
    if q >= end or buf[q] != _RAW_TAG:
        return None
    raw, q = _short_varint(buf, q + 1, end)
    if q != end or not raw or raw > 0xFFFFFFFF:
        return None
    return ViewChunk(buf[pos + 2:pos + 34], view[p:p + n], compressed, raw)


def _short_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """`_varint_at`, the one- and two-byte cases without its loop (sizes under 16 KiB)."""
    if pos < end:
        b0 = buf[pos]
        if b0 < 0x80:
            return b0, pos + 1
        if pos + 1 < end and (b1 := buf[pos + 1]) < 0x80:
            return (b0 & 0x7F) | (b1 << 7), pos + 2
    return _varint_at(buf, pos, end)


def decode_chunk_batch(buf: bytes, pos: int, end: int) -> list[ViewChunk]:
    """The Chunks of the ChunkBatch encoded in buf[pos:end]; MalformedMessage (a DecodeError) if malformed."""
    view = memoryview(buf)
    chunks: list[ViewChunk] = []
    add = chunks.append
    chunk_tag = _BATCH_CHUNK[0]
    while pos < end:
        if buf[pos] != chunk_tag:
            tag, pos = _varint_at(buf, pos, end)
            pos = _field_end(buf, tag & 7, pos, end)
            continue
        n, start = _short_varint(buf, pos + 1, end)
        pos = start + n
        if pos > end:
            raise MalformedMessage("field runs past the end of a chunk batch")
        add(_framed_chunk(buf, view, start, pos) or _decode_chunk(buf, view, start, pos))
    return chunks


def chunk_batch_deserializer(message_cls: type[Message]) -> Callable[[bytes], Message | ChunkMessage]:
    """gRPC deserializer: a message holding only its ChunkBatch field `chunks` becomes a ChunkMessage.

    Payloads are memoryviews of the received bytes, which they keep alive. Any other
    message, and any message with more than that one field, is parsed by `message_cls`.
    """
    tag = _tag(message_cls.DESCRIPTOR.fields_by_name["chunks"].number, _LEN)

    def deserialize(raw: bytes) -> Message | ChunkMessage:
        if raw.startswith(tag):
            n, pos = _varint_at(raw, len(tag), len(raw))
            if pos + n == len(raw):
                return ChunkMessage(ViewBatch(decode_chunk_batch(raw, pos, len(raw))))
        try:
            return message_cls.FromString(raw)
        except DecodeError as exc:
            raise MalformedMessage(f"a {message_cls.__name__} that does not parse: {exc}") from None

    return deserialize
