//! permessage-deflate (RFC 7692) underneath tungstenite, which has no extension support: this
//! stream sits between the socket and tungstenite, inflates the client's compressed messages
//! into plain frames and deflates the data frames tungstenite writes. Control frames and
//! uncompressed messages pass through untouched, so tungstenite still checks the protocol,
//! the UTF-8 of text and the message size on everything that comes out of here.

use std::fmt;
use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use super::deflate_offer::Agreement;

/// What a sync flush ends with; RFC 7692 has the sender drop it and the receiver put it back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Inflated bytes handed to tungstenite per frame: what a compressed message may grow to
/// before tungstenite's size check sees it is bounded by this, not by the compression ratio.
const CHUNK: usize = 64 * 1024;
/// Compressed bytes waiting for the socket before writes wait for it.
const HIGH_WATER: usize = 256 * 1024;

/// Why the client's compressed data could not be used; the session closes with the matching
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// A compressed frame longer than any message within the size limit can compress to.
    TooBig,
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "compressed frame too big",
            InflateError::Corrupt => "invalid compressed data",
        })
    }
}

impl std::error::Error for InflateError {}

impl InflateError {
    /// The error inside an I/O error this stream returned, if it is one.
    pub fn of(err: &io::Error) -> Option<InflateError> {
        err.get_ref()?.downcast_ref::<InflateError>().copied()
    }

    fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }
}

/// The socket, compressed or not.
pub struct MaybeDeflate<S> {
    inner: S,
    codec: Option<Box<Codec>>,
}

struct Codec {
    reader: Reader,
    writer: Writer,
}

impl<S> MaybeDeflate<S> {
    pub fn plain(inner: S) -> Self {
        Self { inner, codec: None }
    }

    pub fn deflate(inner: S, agreement: &Agreement, max_size: usize) -> Self {
        let codec = Codec {
            reader: Reader::new(max_size),
            writer: Writer::new(agreement),
        };
        Self {
            inner,
            codec: Some(Box::new(codec)),
        }
    }
}

/// Where a message from the client stands.
enum Incoming {
    Between,
    Plain,
    /// Compressed; `started` once its first plain frame went to tungstenite, `empty` while
    /// none of its frames carried a byte.
    Compressed {
        opcode: OpCode,
        started: bool,
        empty: bool,
    },
}

/// One compressed frame's payload (unmasked; with the tail put back on the last frame).
struct Inflating {
    input: BytesMut,
    fin: bool,
}

enum Step {
    Progress,
    NeedInput,
}

struct Reader {
    /// Bytes from the socket not handled yet.
    raw: BytesMut,
    /// Plain frames for tungstenite.
    out: BytesMut,
    /// Payload bytes of the current frame that go through as they are.
    passthrough: u64,
    /// After something that is not a valid frame: tungstenite gets the bytes and rejects them.
    transparent: bool,
    eof: bool,
    message: Incoming,
    inflating: Option<Inflating>,
    inflater: Decompress,
    max_size: usize,
    /// Socket reads land here.
    scratch: Box<[u8]>,
    /// Inflated bytes of one plain frame: never more than tungstenite's frame limit.
    inflated: Box<[u8]>,
}

impl Reader {
    fn new(max_size: usize) -> Self {
        Self {
            raw: BytesMut::new(),
            out: BytesMut::new(),
            passthrough: 0,
            transparent: false,
            eof: false,
            message: Incoming::Between,
            inflating: None,
            inflater: Decompress::new(false),
            max_size,
            scratch: vec![0; CHUNK].into_boxed_slice(),
            inflated: vec![0; CHUNK.min(max_size.max(1))].into_boxed_slice(),
        }
    }

    /// Deflate's worst case (stored blocks) adds 5 bytes per 64 KiB, so a message within the
    /// limit never compresses to more than this.
    fn max_compressed(&self) -> u64 {
        let size = self.max_size as u64;
        size + size / 1024 + 1024
    }

    fn step(&mut self) -> Result<Step, InflateError> {
        if self.inflating.is_some() {
            self.inflate()?;
            return Ok(Step::Progress);
        }
        if self.raw.is_empty() {
            return Ok(Step::NeedInput);
        }
        if self.transparent {
            self.out.unsplit(self.raw.split());
            return Ok(Step::Progress);
        }
        if self.passthrough > 0 {
            let n = self
                .raw
                .len()
                .min(usize::try_from(self.passthrough).unwrap_or(usize::MAX));
            self.out.unsplit(self.raw.split_to(n));
            self.passthrough -= n as u64;
            return Ok(Step::Progress);
        }
        let mut cursor = Cursor::new(&self.raw[..]);
        let (header, length) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => return Ok(Step::NeedInput),
            Err(_) => {
                self.transparent = true;
                return Ok(Step::Progress);
            }
        };
        let header_len = cursor.position() as usize;
        let data_start = matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
        let continuation = header.opcode == OpCode::Data(Data::Continue);
        let compressed = match self.message {
            Incoming::Between => data_start && header.rsv1 && header.mask.is_some(),
            Incoming::Compressed { .. } if continuation => {
                if header.rsv1 || header.mask.is_none() {
                    // RSV1 belongs on the first frame only: tungstenite rejects this frame.
                    self.transparent = true;
                    return Ok(Step::Progress);
                }
                true
            }
            Incoming::Compressed { .. } if data_start => {
                // A new message inside an unfinished one: tungstenite rejects it.
                self.transparent = true;
                return Ok(Step::Progress);
            }
            _ => false,
        };
        if !compressed {
            if data_start {
                self.message = if header.is_final {
                    Incoming::Between
                } else {
                    Incoming::Plain
                };
            } else if continuation && header.is_final {
                self.message = Incoming::Between;
            }
            self.out.unsplit(self.raw.split_to(header_len));
            self.passthrough = length;
            return Ok(Step::Progress);
        }
        if length > self.max_compressed() {
            return Err(InflateError::TooBig);
        }
        let length = length as usize;
        if self.raw.len() < header_len + length {
            self.raw.reserve(header_len + length - self.raw.len());
            return Ok(Step::NeedInput);
        }
        self.raw.advance(header_len);
        let mut input = self.raw.split_to(length);
        if let Some(mask) = header.mask {
            for (i, byte) in input.iter_mut().enumerate() {
                *byte ^= mask[i & 3];
            }
        }
        if data_start {
            self.message = Incoming::Compressed {
                opcode: header.opcode,
                started: false,
                empty: true,
            };
        }
        let Incoming::Compressed { empty, .. } = &mut self.message else {
            unreachable!("a compressed frame starts or continues a compressed message")
        };
        *empty &= input.is_empty();
        // A sender whose flush emitted nothing sends an empty message as no bytes at all; the
        // tail after nothing would leave the inflater inside a block header and garble the
        // next message.
        if header.is_final && !*empty {
            input.extend_from_slice(&TAIL);
        }
        self.inflating = Some(Inflating {
            input,
            fin: header.is_final,
        });
        Ok(Step::Progress)
    }

    /// Inflates up to one chunk of the current compressed frame into a plain frame.
    fn inflate(&mut self) -> Result<(), InflateError> {
        let job = self.inflating.as_mut().expect("called while inflating");
        let inflater = &mut self.inflater;
        let (before_in, before_out) = (inflater.total_in(), inflater.total_out());
        let status = inflater
            .decompress(&job.input, &mut self.inflated, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        let consumed = (inflater.total_in() - before_in) as usize;
        let produced = (inflater.total_out() - before_out) as usize;
        job.input.advance(consumed);
        let ended = status == Status::StreamEnd;
        // Input used up and room left over: nothing of this frame is still inside the inflater.
        let drained = (job.input.is_empty() || ended) && produced < self.inflated.len();
        if !drained && consumed == 0 && produced == 0 {
            return Err(InflateError::Corrupt);
        }
        let fin = drained && job.fin;
        if drained {
            self.inflating = None;
        }
        if ended {
            // A sender may end a message with a final block; the next one starts a new stream.
            inflater.reset(false);
        }
        emit(
            &mut self.message,
            &mut self.out,
            &self.inflated[..produced],
            fin,
        );
        Ok(())
    }
}

/// A plain frame of the message being inflated, masked (with a zero key) as a client's frames
/// must be.
fn emit(message: &mut Incoming, out: &mut BytesMut, payload: &[u8], fin: bool) {
    {
        let Incoming::Compressed {
            opcode, started, ..
        } = message
        else {
            unreachable!("emit is only called for compressed messages")
        };
        if payload.is_empty() && !fin && *started {
            return;
        }
        let header = FrameHeader {
            is_final: fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: if *started {
                OpCode::Data(Data::Continue)
            } else {
                *opcode
            },
            mask: Some([0; 4]),
        };
        *started = true;
        write_header(&header, payload.len(), out);
        out.extend_from_slice(payload);
    }
    if fin {
        *message = Incoming::Between;
    }
}

struct Writer {
    /// tungstenite's bytes not handled yet.
    raw: BytesMut,
    /// Frames for the socket.
    out: BytesMut,
    passthrough: u64,
    transparent: bool,
    deflater: Compress,
    reset_each_message: bool,
}

impl Writer {
    fn new(agreement: &Agreement) -> Self {
        Self {
            raw: BytesMut::new(),
            out: BytesMut::new(),
            passthrough: 0,
            transparent: false,
            deflater: Compress::new_with_window_bits(
                Compression::default(),
                false,
                agreement.window_bits(),
            ),
            reset_each_message: agreement.server_no_context_takeover,
        }
    }

    fn process(&mut self) -> io::Result<()> {
        while !self.raw.is_empty() {
            if self.transparent {
                self.out.unsplit(self.raw.split());
                break;
            }
            if self.passthrough > 0 {
                let n = self
                    .raw
                    .len()
                    .min(usize::try_from(self.passthrough).unwrap_or(usize::MAX));
                self.out.unsplit(self.raw.split_to(n));
                self.passthrough -= n as u64;
                continue;
            }
            let mut cursor = Cursor::new(&self.raw[..]);
            let (header, length) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(_) => {
                    self.transparent = true;
                    continue;
                }
            };
            let header_len = cursor.position() as usize;
            if !matches!(header.opcode, OpCode::Data(_)) {
                self.out.unsplit(self.raw.split_to(header_len));
                self.passthrough = length;
                continue;
            }
            let length = usize::try_from(length).map_err(io::Error::other)?;
            if self.raw.len() < header_len + length {
                break;
            }
            self.raw.advance(header_len);
            let mut payload = self.raw.split_to(length);
            if let Some(mask) = header.mask {
                for (i, byte) in payload.iter_mut().enumerate() {
                    *byte ^= mask[i & 3];
                }
            }
            let compressed = self.compress(&payload, header.is_final)?;
            let out_header = FrameHeader {
                rsv1: header.opcode != OpCode::Data(Data::Continue),
                mask: None,
                ..header
            };
            write_header(&out_header, compressed.len(), &mut self.out);
            self.out.extend_from_slice(&compressed);
        }
        Ok(())
    }

    fn compress(&mut self, payload: &[u8], fin: bool) -> io::Result<Vec<u8>> {
        let mut out = sync_flush(&mut self.deflater, payload)?;
        if fin {
            end_message(&mut out);
            if self.reset_each_message {
                self.deflater.reset();
            }
        }
        Ok(out)
    }
}

/// `payload` compressed and flushed, so that the receiver can inflate all of it at once.
fn sync_flush(deflater: &mut Compress, payload: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let mut input = payload;
    loop {
        let before = deflater.total_in();
        deflater
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        input = &input[(deflater.total_in() - before) as usize..];
        // The flush is complete once all input is in and the output was not filled up.
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(out);
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// The last frame of a message drops the flush's tail (RFC 7692 section 7.2.1). A flush right
/// after another emits nothing, not even the tail; such a message goes out as the single byte
/// of RFC 7692 section 7.2.3.6, because a receiver appends the tail to whatever arrives and
/// the tail alone is not a whole block.
fn end_message(out: &mut Vec<u8>) {
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    } else if out.is_empty() {
        out.push(0x00);
    }
}

fn write_header(header: &FrameHeader, length: usize, out: &mut BytesMut) {
    let mut bytes = Vec::with_capacity(14);
    header
        .format(length as u64, &mut bytes)
        .expect("writing to a Vec cannot fail");
    out.extend_from_slice(&bytes);
}

/// Writes `buf` to the socket until it is empty or the socket is busy.
fn poll_write_out<S: AsyncWrite + Unpin>(
    inner: &mut S,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    keep: usize,
) -> Poll<io::Result<()>> {
    while buf.len() > keep {
        let n = ready!(Pin::new(&mut *inner).poll_write(cx, buf))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        buf.advance(n);
    }
    Poll::Ready(Ok(()))
}

impl<S: AsyncRead + Unpin> AsyncRead for MaybeDeflate<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(codec) = this.codec.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let reader = &mut codec.reader;
        loop {
            if !reader.out.is_empty() {
                let n = reader.out.len().min(buf.remaining());
                buf.put_slice(&reader.out.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if reader.eof {
                return Poll::Ready(Ok(()));
            }
            match reader.step().map_err(InflateError::into_io)? {
                Step::Progress => continue,
                Step::NeedInput => {}
            }
            let mut read = ReadBuf::new(&mut reader.scratch);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // tungstenite sees the same cut-off bytes and end of stream it would have.
                reader.eof = true;
                reader.out.unsplit(reader.raw.split());
            } else {
                reader.raw.extend_from_slice(read.filled());
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MaybeDeflate<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(codec) = this.codec.as_mut() else {
            return Pin::new(&mut this.inner).poll_write(cx, data);
        };
        let writer = &mut codec.writer;
        ready!(poll_write_out(
            &mut this.inner,
            cx,
            &mut writer.out,
            HIGH_WATER
        ))?;
        writer.raw.extend_from_slice(data);
        writer.process()?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncWrite + Unpin> MaybeDeflate<S> {
    /// Writes out every compressed byte still waiting, before a flush or a shutdown.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.codec.as_mut() {
            Some(codec) => poll_write_out(&mut self.inner, cx, &mut codec.writer.out, 0),
            None => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    /// A client's frame: masked, payload deflated when `rsv1`.
    fn client_frame(opcode: OpCode, fin: bool, rsv1: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let header = FrameHeader {
            is_final: fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(mask),
        };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    /// A message as a conforming client compresses it.
    fn deflate_message(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = sync_flush(compress, data).unwrap();
        end_message(&mut out);
        out
    }

    async fn server(
        max_size: usize,
        agreement: Agreement,
    ) -> (
        WebSocketStream<MaybeDeflate<tokio::io::DuplexStream>>,
        tokio::io::DuplexStream,
    ) {
        let (ours, theirs) = duplex(1 << 20);
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_size))
            .max_frame_size(Some(max_size));
        let io = MaybeDeflate::deflate(ours, &agreement, max_size);
        let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        (ws, theirs)
    }

    #[tokio::test]
    async fn inflates_compressed_messages_with_context_takeover() {
        let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
        let mut compress = Compress::new(Compression::default(), false);
        let text = "hello compressed world ".repeat(200);
        for _ in 0..2 {
            // The second message refers back to the first one's window.
            let payload = deflate_message(&mut compress, text.as_bytes());
            let frame = client_frame(OpCode::Data(Data::Text), true, true, &payload);
            client.write_all(&frame).await.unwrap();
            let message = ws.next().await.unwrap().unwrap();
            assert_eq!(message, Message::text(text.clone()));
        }
        // An uncompressed message still passes.
        let frame = client_frame(OpCode::Data(Data::Binary), true, false, b"raw");
        client.write_all(&frame).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::binary(&b"raw"[..])
        );
    }

    #[tokio::test]
    async fn fragmented_compressed_message_with_a_ping_between() {
        let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
        let mut compress = Compress::new(Compression::default(), false);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let payload = deflate_message(&mut compress, &data);
        let (first, rest) = payload.split_at(payload.len() / 2);
        let mut bytes = client_frame(OpCode::Data(Data::Binary), false, true, first);
        bytes.extend(client_frame(
            OpCode::Control(Control::Ping),
            true,
            false,
            b"p",
        ));
        bytes.extend(client_frame(
            OpCode::Data(Data::Continue),
            true,
            false,
            rest,
        ));
        client.write_all(&bytes).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Ping((&b"p"[..]).into())
        );
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(data));
    }

    #[tokio::test]
    async fn a_compression_bomb_stops_at_the_size_limit() {
        let (mut ws, mut client) = server(100_000, Agreement::default()).await;
        let mut compress = Compress::new(Compression::best(), false);
        let payload = deflate_message(&mut compress, &vec![b'a'; 10_000_000]);
        assert!(payload.len() < 100_000);
        let frame = client_frame(OpCode::Data(Data::Binary), true, true, &payload);
        client.write_all(&frame).await.unwrap();
        let err = ws.next().await.unwrap().unwrap_err();
        assert!(
            matches!(err, WsError::Capacity(_)),
            "tungstenite's own limit applies: {err}"
        );
    }

    #[tokio::test]
    async fn corrupt_and_oversized_compressed_frames_are_reported() {
        let (mut ws, mut client) = server(1000, Agreement::default()).await;
        let frame = client_frame(OpCode::Data(Data::Text), true, true, &[0xff; 10]);
        client.write_all(&frame).await.unwrap();
        match ws.next().await.unwrap().unwrap_err() {
            WsError::Io(err) => assert_eq!(InflateError::of(&err), Some(InflateError::Corrupt)),
            other => panic!("{other}"),
        }
        let (mut ws, mut client) = server(1000, Agreement::default()).await;
        let frame = client_frame(OpCode::Data(Data::Text), true, true, &[0; 3000]);
        client.write_all(&frame).await.unwrap();
        match ws.next().await.unwrap().unwrap_err() {
            WsError::Io(err) => assert_eq!(InflateError::of(&err), Some(InflateError::TooBig)),
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn rsv1_on_a_control_frame_is_still_a_protocol_error() {
        let (mut ws, mut client) = server(1000, Agreement::default()).await;
        let ping = OpCode::Control(Control::Ping);
        client
            .write_all(&client_frame(ping, true, true, b""))
            .await
            .unwrap();
        assert!(matches!(
            ws.next().await.unwrap().unwrap_err(),
            WsError::Protocol(_)
        ));
    }

    /// Reads one server frame: (header, payload).
    async fn read_server_frame(client: &mut tokio::io::DuplexStream) -> (FrameHeader, Vec<u8>) {
        let mut buf = Vec::new();
        loop {
            let mut cursor = Cursor::new(&buf[..]);
            if let Some((header, length)) = FrameHeader::parse(&mut cursor).unwrap() {
                let start = cursor.position() as usize;
                while buf.len() < start + length as usize {
                    let mut more = [0u8; 4096];
                    let n = client.read(&mut more).await.unwrap();
                    buf.extend_from_slice(&more[..n]);
                }
                return (header, buf[start..start + length as usize].to_vec());
            }
            let mut more = [0u8; 4096];
            let n = client.read(&mut more).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&more[..n]);
        }
    }

    fn inflate_message(decompress: &mut Decompress, payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&TAIL);
        let mut out = Vec::with_capacity(1 << 20);
        decompress
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[tokio::test]
    async fn deflates_what_the_server_sends() {
        let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
        let text = "a compressible message ".repeat(500);
        let mut decompress = Decompress::new(false);
        let mut sizes = Vec::new();
        for _ in 0..2 {
            ws.send(Message::text(text.clone())).await.unwrap();
            let (header, payload) = read_server_frame(&mut client).await;
            assert!(header.rsv1 && header.is_final && header.mask.is_none());
            assert_eq!(inflate_message(&mut decompress, &payload), text.as_bytes());
            sizes.push(payload.len());
        }
        assert!(sizes[0] < text.len() / 10, "{sizes:?}");
        // With context takeover the repeat is a back-reference.
        assert!(sizes[1] < sizes[0], "{sizes:?}");
        ws.send(Message::Ping((&b"x"[..]).into())).await.unwrap();
        let (header, payload) = read_server_frame(&mut client).await;
        assert!(!header.rsv1);
        assert_eq!(payload, b"x");
    }

    #[tokio::test]
    async fn no_context_takeover_and_small_windows() {
        let agreement = Agreement {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: Some(9),
        };
        let (mut ws, mut client) = server(1 << 20, agreement).await;
        let text = "0123456789abcdef".repeat(100);
        let mut sizes = Vec::new();
        for _ in 0..2 {
            ws.send(Message::text(text.clone())).await.unwrap();
            let (_, payload) = read_server_frame(&mut client).await;
            // A fresh inflater for each message: no back-references across messages.
            let mut decompress = Decompress::new_with_window_bits(false, 9);
            assert_eq!(inflate_message(&mut decompress, &payload), text.as_bytes());
            sizes.push(payload.len());
        }
        assert_eq!(sizes[0], sizes[1]);
    }

    #[tokio::test]
    async fn empty_messages_in_a_row_leave_the_client_in_step() {
        let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
        let mut decompress = Decompress::new(false);
        for data in [&b""[..], b"", b"", b"after the empty ones"] {
            ws.send(Message::binary(data)).await.unwrap();
            let (_, payload) = read_server_frame(&mut client).await;
            assert!(
                !payload.is_empty(),
                "an empty payload plus the tail is not a block"
            );
            assert_eq!(inflate_message(&mut decompress, &payload), data);
        }
    }

    #[tokio::test]
    async fn an_empty_message_sent_as_no_bytes_inflates_to_nothing() {
        let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
        let mut compress = Compress::new(Compression::default(), false);
        let first = deflate_message(&mut compress, b"before");
        let binary = OpCode::Data(Data::Binary);
        let mut stream = client_frame(binary, true, true, &first);
        // Some clients' flush emits nothing for an empty message, fragmented or not.
        stream.extend(client_frame(binary, true, true, b""));
        stream.extend(client_frame(binary, false, true, b""));
        stream.extend(client_frame(OpCode::Data(Data::Continue), true, false, b""));
        let last = deflate_message(&mut compress, b"before, again");
        stream.extend(client_frame(binary, true, true, &last));
        client.write_all(&stream).await.unwrap();
        for expected in [&b"before"[..], b"", b"", b"before, again"] {
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(expected));
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Bytes from a small alphabet, so that they compress and refer back to earlier ones.
        fn message() -> impl Strategy<Value = (Vec<u8>, bool, Vec<usize>, bool)> {
            (
                proptest::collection::vec(
                    prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()],
                    0..3000,
                ),
                any::<bool>(),
                proptest::collection::vec(0usize..3000, 0..4),
                any::<bool>(),
            )
        }

        /// The client's bytes: each message compressed or not, cut into fragments at
        /// `splits`, with a ping after the first fragment when asked.
        fn client_stream(messages: &[(Vec<u8>, bool, Vec<usize>, bool)]) -> Vec<u8> {
            let mut compress = Compress::new(Compression::default(), false);
            let mut stream = Vec::new();
            for (data, compressed, splits, ping) in messages {
                let payload = if *compressed {
                    deflate_message(&mut compress, data)
                } else {
                    data.clone()
                };
                let mut cuts: Vec<usize> = splits.iter().map(|s| s % (payload.len() + 1)).collect();
                cuts.sort_unstable();
                cuts.dedup();
                cuts.push(payload.len());
                let mut start = 0;
                for (i, &cut) in cuts.iter().enumerate() {
                    let opcode = if i == 0 {
                        OpCode::Data(Data::Binary)
                    } else {
                        OpCode::Data(Data::Continue)
                    };
                    let fin = i + 1 == cuts.len();
                    let rsv1 = *compressed && i == 0;
                    stream.extend(client_frame(opcode, fin, rsv1, &payload[start..cut]));
                    if i == 0 && *ping && !fin {
                        stream.extend(client_frame(
                            OpCode::Control(Control::Ping),
                            true,
                            false,
                            b"",
                        ));
                    }
                    start = cut;
                }
            }
            stream
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn any_mix_of_fragments_and_reads_inflates_to_the_messages(
                messages in proptest::collection::vec(message(), 1..6),
                piece in 1usize..700,
            ) {
                let stream = client_stream(&messages);
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let received = runtime.block_on(async {
                    let (mut ws, mut client) = server(1 << 20, Agreement::default()).await;
                    // The socket hands the bytes over in arbitrary pieces.
                    let writer = tokio::spawn(async move {
                        for chunk in stream.chunks(piece) {
                            client.write_all(chunk).await.unwrap();
                        }
                        client
                    });
                    let mut received = Vec::new();
                    while received.len() < messages.len() {
                        match ws.next().await.unwrap().unwrap() {
                            Message::Binary(data) => received.push(data.to_vec()),
                            Message::Ping(_) => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    drop(writer.await.unwrap());
                    received
                });
                let expected: Vec<Vec<u8>> = messages.iter().map(|m| m.0.clone()).collect();
                prop_assert_eq!(received, expected);
            }

            #[test]
            fn whatever_the_server_sends_inflates_back(
                messages in proptest::collection::vec(message(), 1..6),
                no_context_takeover in any::<bool>(),
                bits in 9u8..=15,
            ) {
                let agreement = Agreement {
                    server_no_context_takeover: no_context_takeover,
                    client_no_context_takeover: false,
                    server_max_window_bits: Some(bits),
                };
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let received = runtime.block_on(async {
                    let (mut ws, mut client) = server(1 << 20, agreement).await;
                    let mut decompress = Decompress::new_with_window_bits(false, bits);
                    let mut received = Vec::new();
                    for (data, ..) in &messages {
                        ws.send(Message::binary(data.clone())).await.unwrap();
                        let (header, payload) = read_server_frame(&mut client).await;
                        assert!(header.rsv1 && header.is_final);
                        if no_context_takeover {
                            decompress.reset(false);
                        }
                        received.push(inflate_message(&mut decompress, &payload));
                    }
                    received
                });
                let expected: Vec<Vec<u8>> = messages.iter().map(|m| m.0.clone()).collect();
                prop_assert_eq!(received, expected);
            }
        }
    }

    #[tokio::test]
    async fn plain_stream_passes_bytes_through() {
        let (ours, mut theirs) = duplex(1024);
        let mut io = MaybeDeflate::plain(ours);
        io.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        theirs.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abc");
    }
}
