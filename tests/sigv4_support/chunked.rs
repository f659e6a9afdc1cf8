//! aws-chunked upload bodies built by hand, chunk by chunk, so that tests can tamper with,
//! reorder or drop chunks and trailer lines after signing.

use bytes::{BufMut as _, Bytes, BytesMut};

use super::sign::{Checksum, RawRequest, Signer};

/// The payload modes of an aws-chunked upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Streaming {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: every chunk signed, no trailer.
    Signed,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks, signed checksum trailer.
    SignedTrailer(Checksum),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: plain chunks, checksum trailer.
    UnsignedTrailer(Checksum),
}

impl Streaming {
    fn content_sha256(self) -> &'static str {
        match self {
            Self::Signed => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Self::SignedTrailer(_) => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
            Self::UnsignedTrailer(_) => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        }
    }

    fn checksum(self) -> Option<Checksum> {
        match self {
            Self::Signed => None,
            Self::SignedTrailer(c) | Self::UnsignedTrailer(c) => Some(c),
        }
    }

    fn signed(self) -> bool {
        !matches!(self, Self::UnsignedTrailer(_))
    }
}

/// One chunk: its header line (size and extensions, without CRLF) and its data.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub(crate) header: String,
    pub(crate) data: Bytes,
}

/// An encoded aws-chunked body, kept in pieces.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedBody {
    /// The data chunks, then the final zero-length chunk.
    pub(crate) chunks: Vec<Chunk>,
    /// Trailer lines (`name:value`, without CRLF).
    pub(crate) trailer: Vec<String>,
}

impl ChunkedBody {
    /// The bytes on the wire: `header CRLF data CRLF` per data chunk, `header CRLF` for the
    /// final chunk, the trailer lines, and the terminating empty line.
    pub(crate) fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        for chunk in &self.chunks {
            out.put_slice(chunk.header.as_bytes());
            out.put_slice(b"\r\n");
            if !chunk.data.is_empty() {
                out.put_slice(&chunk.data);
                out.put_slice(b"\r\n");
            }
        }
        for line in &self.trailer {
            out.put_slice(line.as_bytes());
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.freeze()
    }

    /// The index of the trailer line starting with `prefix`.
    pub(crate) fn trailer_line(&self, prefix: &str) -> usize {
        self.trailer
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no trailer line {prefix}: {:?}", self.trailer))
    }
}

/// An aws-chunked PutObject to build: payload, mode, chunking and the declared decoded
/// length.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedUpload {
    pub(crate) mode: Streaming,
    pub(crate) payload: Bytes,
    pub(crate) chunk_size: usize,
    /// `x-amz-decoded-content-length` (the payload length unless a test lies).
    pub(crate) declared_length: u64,
}

impl ChunkedUpload {
    /// `payload` in 64 KiB chunks.
    pub(crate) fn new(mode: Streaming, payload: impl Into<Bytes>) -> Self {
        let payload = payload.into();
        Self {
            mode,
            declared_length: payload.len() as u64,
            payload,
            chunk_size: 64 * 1024,
        }
    }

    #[must_use]
    pub(crate) fn declared_length(mut self, length: u64) -> Self {
        self.declared_length = length;
        self
    }

    /// Signs the head of `request` (a PUT with its host) for this upload and encodes the body
    /// with chunk and trailer signatures chained from the seed signature. The body is
    /// returned apart so that a test can tamper with it before attaching it.
    pub(crate) fn build(
        &self,
        request: RawRequest,
        signer: &Signer<'_>,
    ) -> (RawRequest, ChunkedBody) {
        let mut request = request.header("content-encoding", "aws-chunked").header(
            "x-amz-decoded-content-length",
            &self.declared_length.to_string(),
        );
        if let Some(checksum) = self.mode.checksum() {
            request = request.header("x-amz-trailer", checksum.header());
        }
        let (request, seed) = request.sign_with(signer, self.mode.content_sha256());

        let mut previous = seed;
        let mut chunks = Vec::new();
        let pieces = self
            .payload
            .chunks(self.chunk_size)
            .map(|c| self.payload.slice_ref(c))
            .chain(std::iter::once(Bytes::new()));
        for data in pieces {
            let header = if self.mode.signed() {
                let signature = signer.chunk_signature(&previous, &data);
                let header = format!("{:x};chunk-signature={signature}", data.len());
                previous = signature;
                header
            } else {
                format!("{:x}", data.len())
            };
            chunks.push(Chunk { header, data });
        }

        let mut trailer = Vec::new();
        if let Some(checksum) = self.mode.checksum() {
            let value = checksum.of(&self.payload);
            trailer.push(format!("{}:{value}", checksum.header()));
            if self.mode.signed() {
                let signature = signer.trailer_signature(&previous, &[(checksum.header(), &value)]);
                trailer.push(format!("x-amz-trailer-signature:{signature}"));
            }
        }
        (request, ChunkedBody { chunks, trailer })
    }
}
