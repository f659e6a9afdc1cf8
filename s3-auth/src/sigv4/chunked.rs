//! aws-chunked bodies (`Content-Encoding: aws-chunked`), decoded and verified while streaming.
//!
//! The encoded body is a sequence of chunks `<hex-size>[;ext...]\r\n<data>\r\n`, a final
//! `0[;ext]\r\n`, then either `\r\n` or trailer lines `name:value\r\n` ending with `\r\n`
//! (AWS documentation "sigv4-streaming" and "sigv4-streaming-trailers").
//!
//! [`AwsChunkedBody`] yields the decoded payload while it streams. In the signed modes every
//! chunk signature is verified as soon as the chunk's data is complete, chained from the seed
//! (request) signature; a checksum trailer is compared with the checksum of the decoded bytes
//! and, in the signed-trailer mode, its trailer signature verified. Verification is fail-closed:
//! the most recent data slice is held back, so the payload's final bytes are only released once
//! the whole body (every signature, the final chunk, the trailer, the length) has verified.
//! On failure the body yields one [`VerifyError::Auth`] and ends.
//!
//! Memory is bounded: chunk data is sliced zero-copy out of the incoming frames; only header
//! and trailer lines are accumulated, at most [`MAX_LINE_LENGTH`] bytes.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use aws_lc_rs::digest;
use bytes::{Buf as _, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::checksum::{ChecksumAlgorithm, Checksummer};
use crate::error::AuthError;
use crate::sigv4::signing::{EMPTY_SHA256, SigningKey, SigningScope, is_lower_hex_64, sha256_hex};

/// A boxed error from the wrapped body.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a verified body stopped: the client's body failed, or verification refused it.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The wrapped body failed (client disconnect, read error).
    Inner(BoxError),
    /// The payload failed verification.
    Auth(AuthError),
}

/// The signing context of `STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)`: each chunk's
/// signature chains from the previous one, starting at the request (seed) signature.
#[derive(Debug, Clone)]
pub(crate) struct ChunkSigning {
    pub(crate) key: SigningKey,
    pub(crate) scope: SigningScope,
    pub(crate) seed_signature: String,
}

/// What an aws-chunked body must satisfy.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedConfig {
    /// `Some` for the signed-chunk modes; `None` for `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
    pub(crate) signing: Option<ChunkSigning>,
    /// Whether the trailer carries `x-amz-trailer-signature` (`...-PAYLOAD-TRAILER` signed mode).
    ///
    /// Only meaningful together with `signing` and `trailer`: without a signing context there is
    /// nothing to verify it with, and without a checksum trailer there is no trailer to sign
    /// (the AWS SDKs send no trailer signature then).
    pub(crate) trailer_signed: bool,
    /// The checksum trailer named by `x-amz-trailer`, if any.
    pub(crate) trailer: Option<ChecksumAlgorithm>,
    /// `x-amz-decoded-content-length`.
    pub(crate) decoded_length: u64,
}

/// The longest chunk header or trailer line accepted, without its CRLF.
pub(crate) const MAX_LINE_LENGTH: usize = 4096;

/// The most trailer lines accepted after the final chunk.
pub(crate) const MAX_TRAILER_LINES: usize = 16;

/// The algorithm line of a chunk string to sign.
const PAYLOAD_ALGORITHM: &str = "AWS4-HMAC-SHA256-PAYLOAD";
/// The algorithm line of the trailer string to sign.
const TRAILER_ALGORITHM: &str = "AWS4-HMAC-SHA256-TRAILER";
/// The chunk extension carrying a chunk's signature.
const CHUNK_SIGNATURE: &[u8] = b"chunk-signature";
/// The trailer line carrying the trailer signature.
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

pin_project! {
    /// The decoded payload of an aws-chunked body, verified while it streams.
    ///
    /// Yields the payload as data frames sliced from the wrapped body's frames; after the
    /// whole body has verified, the held-back last slice and then, if a checksum trailer was
    /// verified, one trailers frame with that checksum header. Trailers of the wrapped body are
    /// ignored. After an error it yields nothing more.
    pub(crate) struct AwsChunkedBody<B> {
        #[pin]
        inner: B,
        decoder: Decoder,
        // Unparsed bytes of the wrapped body's current frame.
        input: Bytes,
        // The most recent decoded slice, released only when the next one arrives or the
        // whole body has verified.
        held: Option<Bytes>,
        stage: Stage,
        // Payload bytes yielded so far.
        yielded: u64,
    }
}

/// Where an [`AwsChunkedBody`] is in its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Decoding the wrapped body.
    Running,
    /// Everything verified: release the held slice, then the trailers.
    Release,
    /// Finished or failed: nothing more to yield.
    Done,
}

impl<B> AwsChunkedBody<B> {
    /// Decodes and verifies `inner` as `config` requires.
    pub(crate) fn new(inner: B, config: ChunkedConfig) -> Self {
        Self {
            inner,
            decoder: Decoder::new(config),
            input: Bytes::new(),
            held: None,
            stage: Stage::Running,
            yielded: 0,
        }
    }
}

impl<B> Body for AwsChunkedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = VerifyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, VerifyError>>> {
        let mut this = self.project();
        loop {
            match *this.stage {
                Stage::Done => return Poll::Ready(None),
                Stage::Release => {
                    if let Some(data) = this.held.take() {
                        *this.yielded += data.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    *this.stage = Stage::Done;
                    return Poll::Ready(this.decoder.trailers().map(|t| Ok(Frame::trailers(t))));
                }
                Stage::Running => {}
            }

            if !this.input.is_empty() {
                match this.decoder.decode(this.input) {
                    Ok(Some(data)) => {
                        if let Some(previous) = this.held.replace(data) {
                            *this.yielded += previous.len() as u64;
                            return Poll::Ready(Some(Ok(Frame::data(previous))));
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        *this.stage = Stage::Done;
                        *this.held = None;
                        *this.input = Bytes::new();
                        return Poll::Ready(Some(Err(VerifyError::Auth(error))));
                    }
                }
            }

            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers of the raw client body carry nothing aws-chunked defines.
                    if let Ok(data) = frame.into_data() {
                        *this.input = data;
                    }
                }
                Some(Err(error)) => {
                    *this.stage = Stage::Done;
                    *this.held = None;
                    return Poll::Ready(Some(Err(VerifyError::Inner(error.into()))));
                }
                None => match this.decoder.finish() {
                    Ok(()) => *this.stage = Stage::Release,
                    Err(error) => {
                        *this.stage = Stage::Done;
                        *this.held = None;
                        return Poll::Ready(Some(Err(VerifyError::Auth(error))));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.stage == Stage::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.stage {
            Stage::Done => SizeHint::with_exact(0),
            Stage::Running | Stage::Release => SizeHint::with_exact(
                self.decoder.decoded_length.saturating_sub(self.yielded),
            ),
        }
    }
}

/// Where the decoder is in the encoded body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a chunk header line.
    Header,
    /// Reading chunk data.
    Data { remaining: u64 },
    /// Expecting the CRLF after chunk data (`seen_cr` once the CR came).
    DataEnd { seen_cr: bool },
    /// After the final chunk: reading trailer lines up to the empty line.
    Trailer,
    /// After the terminating empty line: only the end of the body may follow.
    Drain,
}

/// The aws-chunked state machine, independent of polling.
struct Decoder {
    signing: Option<ChunkSigning>,
    /// Whether a trailer signature is required (signed chunks and a checksum trailer).
    trailer_signed: bool,
    trailer: Option<ChecksumAlgorithm>,
    decoded_length: u64,

    phase: Phase,
    /// The header or trailer line being accumulated (without its CRLF once complete).
    line: Vec<u8>,
    /// The sum of the chunk sizes seen so far.
    declared: u64,
    /// The signature the next chunk chains from.
    prev_signature: String,
    /// The signature of the chunk being read.
    chunk_signature: Option<String>,
    /// The SHA-256 of the chunk being read (signed modes).
    chunk_hash: Option<digest::Context>,
    /// The running checksum of the decoded payload, taken when the trailer arrives.
    checksum: Option<Checksummer>,
    /// The verified checksum trailer value.
    trailer_value: Option<HeaderValue>,
    /// Whether the trailer signature has verified.
    trailer_signature_verified: bool,
    /// Trailer lines read so far.
    trailer_lines: usize,
}

impl Decoder {
    fn new(config: ChunkedConfig) -> Self {
        let trailer_signed =
            config.trailer_signed && config.signing.is_some() && config.trailer.is_some();
        let prev_signature = config
            .signing
            .as_ref()
            .map(|s| s.seed_signature.clone())
            .unwrap_or_default();
        Self {
            trailer_signed,
            trailer: config.trailer,
            decoded_length: config.decoded_length,
            checksum: config.trailer.map(ChecksumAlgorithm::hasher),
            signing: config.signing,
            phase: Phase::Header,
            line: Vec::new(),
            declared: 0,
            prev_signature,
            chunk_signature: None,
            chunk_hash: None,
            trailer_value: None,
            trailer_signature_verified: false,
            trailer_lines: 0,
        }
    }

    /// Consumes `input` until a slice of decoded data is ready (returned) or `input` is
    /// exhausted (`None`).
    fn decode(&mut self, input: &mut Bytes) -> Result<Option<Bytes>, AuthError> {
        while !input.is_empty() {
            match self.phase {
                Phase::Header => {
                    if self.read_line(input, AuthError::MalformedChunk("chunk header not terminated by CRLF"))? {
                        self.chunk_header()?;
                    }
                }
                Phase::Data { remaining } => {
                    let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                    let data = input.split_to(n);
                    if let Some(hash) = &mut self.chunk_hash {
                        hash.update(&data);
                    }
                    if let Some(checksum) = &mut self.checksum {
                        checksum.update(&data);
                    }
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        self.phase = Phase::DataEnd { seen_cr: false };
                        self.chunk_data_complete()?;
                    } else {
                        self.phase = Phase::Data { remaining };
                    }
                    return Ok(Some(data));
                }
                Phase::DataEnd { seen_cr } => {
                    let byte = input[0];
                    input.advance(1);
                    self.phase = match (seen_cr, byte) {
                        (false, b'\r') => Phase::DataEnd { seen_cr: true },
                        (true, b'\n') => Phase::Header,
                        _ => return Err(AuthError::MalformedChunk("missing CRLF after chunk data")),
                    };
                }
                Phase::Trailer => {
                    if self.read_line(input, AuthError::MalformedTrailer("trailer line not terminated by CRLF"))? {
                        self.trailer_line()?;
                    }
                }
                Phase::Drain => {
                    return Err(AuthError::MalformedChunk("data after the final chunk"));
                }
            }
        }
        Ok(None)
    }

    /// The wrapped body ended: whether the encoded body was complete.
    fn finish(&mut self) -> Result<(), AuthError> {
        match self.phase {
            Phase::Drain => Ok(()),
            // Some SDKs omit the empty line after a complete trailer section.
            Phase::Trailer if self.line.is_empty() && self.trailer_complete() => Ok(()),
            _ => Err(AuthError::IncompleteBody),
        }
    }

    /// The verified checksum trailer, once.
    fn trailers(&mut self) -> Option<HeaderMap> {
        let algorithm = self.trailer?;
        let value = self.trailer_value.take()?;
        let mut map = HeaderMap::with_capacity(1);
        map.insert(HeaderName::from_static(algorithm.header_name()), value);
        Some(map)
    }

    /// Moves bytes of `input` into `self.line` up to and including LF; whether the line is
    /// complete (then `self.line` holds it without its CRLF).
    fn read_line(&mut self, input: &mut Bytes, bare_lf: AuthError) -> Result<bool, AuthError> {
        // Room for the line, its CR and the LF: never scan or buffer further.
        let room = (MAX_LINE_LENGTH + 2).saturating_sub(self.line.len());
        let window = &input[..input.len().min(room)];
        match window.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&window[..i]);
                input.advance(i + 1);
                if self.line.pop() != Some(b'\r') {
                    return Err(bare_lf);
                }
                Ok(true)
            }
            None if window.len() == input.len() && self.line.len() + window.len() <= MAX_LINE_LENGTH + 1 => {
                self.line.extend_from_slice(window);
                input.clear();
                Ok(false)
            }
            None => Err(AuthError::ChunkHeaderTooLong(MAX_LINE_LENGTH)),
        }
    }

    /// Handles the complete chunk header in `self.line`.
    fn chunk_header(&mut self) -> Result<(), AuthError> {
        let (size, signature) = parse_chunk_header(&self.line, self.signing.is_some())?;
        self.line.clear();
        let total = self.declared.checked_add(size).unwrap_or(u64::MAX);
        if total > self.decoded_length {
            return Err(AuthError::DecodedLengthMismatch {
                declared: self.decoded_length,
                actual: total,
            });
        }
        self.declared = total;
        if size == 0 {
            if let Some(signature) = signature {
                self.verify_chunk(signature, EMPTY_SHA256)?;
            }
            if self.declared < self.decoded_length {
                return Err(AuthError::DecodedLengthMismatch {
                    declared: self.decoded_length,
                    actual: self.declared,
                });
            }
            self.phase = Phase::Trailer;
        } else {
            self.chunk_hash = signature
                .is_some()
                .then(|| digest::Context::new(&digest::SHA256));
            self.chunk_signature = signature;
            self.phase = Phase::Data { remaining: size };
        }
        Ok(())
    }

    /// The data of the current chunk is complete: verify its signature.
    fn chunk_data_complete(&mut self) -> Result<(), AuthError> {
        if let (Some(signature), Some(hash)) = (self.chunk_signature.take(), self.chunk_hash.take())
        {
            let hash = hex::encode(hash.finish().as_ref());
            self.verify_chunk(signature, &hash)?;
        }
        Ok(())
    }

    /// Verifies a chunk signature over the chunk data's hex SHA-256, and chains from it.
    fn verify_chunk(&mut self, provided: String, data_hash: &str) -> Result<(), AuthError> {
        let Some(signing) = &self.signing else {
            return Ok(());
        };
        let string_to_sign = signing.scope.string_to_sign(
            PAYLOAD_ALGORITHM,
            &format!("{}\n{EMPTY_SHA256}\n{data_hash}", self.prev_signature),
        );
        if !signing.key.verify_hex(string_to_sign.as_bytes(), &provided) {
            return Err(AuthError::ChunkSignatureMismatch);
        }
        self.prev_signature = provided;
        Ok(())
    }

    /// Whether every required trailer line has come (and verified).
    fn trailer_complete(&self) -> bool {
        self.trailer.is_none()
            || (self.trailer_value.is_some()
                && (!self.trailer_signed || self.trailer_signature_verified))
    }

    /// Handles the complete trailer line in `self.line`.
    fn trailer_line(&mut self) -> Result<(), AuthError> {
        if self.line.is_empty() {
            // The terminating empty line.
            if self.trailer.is_some() && self.trailer_value.is_none() {
                return Err(AuthError::MalformedTrailer("the declared checksum trailer is missing"));
            }
            if !self.trailer_complete() {
                return Err(AuthError::TrailerSignatureMismatch);
            }
            self.phase = Phase::Drain;
            return Ok(());
        }
        self.trailer_lines += 1;
        if self.trailer_lines > MAX_TRAILER_LINES {
            return Err(AuthError::MalformedTrailer("too many trailer lines"));
        }
        let Some(algorithm) = self.trailer else {
            return Err(AuthError::MalformedTrailer("a trailer that x-amz-trailer does not declare"));
        };
        let line = std::mem::take(&mut self.line);
        let result = self.trailer_header(algorithm, &line);
        // Keep the buffer's allocation for the next line.
        self.line = line;
        self.line.clear();
        result
    }

    fn trailer_header(&mut self, algorithm: ChecksumAlgorithm, line: &[u8]) -> Result<(), AuthError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| AuthError::MalformedTrailer("a trailer line is not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or(AuthError::MalformedTrailer("a trailer line has no colon"))?;
        let value = value.trim_ascii();
        if name.eq_ignore_ascii_case(algorithm.header_name()) {
            if self.trailer_value.is_some() {
                return Err(AuthError::MalformedTrailer("duplicate checksum trailer"));
            }
            let computed = self
                .checksum
                .take()
                .ok_or(AuthError::MalformedTrailer("duplicate checksum trailer"))?
                .finalize_base64();
            if computed != value {
                return Err(AuthError::ChecksumMismatch(algorithm));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| AuthError::MalformedTrailer("invalid checksum value"))?;
            self.trailer_value = Some(value);
            Ok(())
        } else if self.trailer_signed && name.eq_ignore_ascii_case(TRAILER_SIGNATURE) {
            if self.trailer_signature_verified {
                return Err(AuthError::MalformedTrailer("duplicate trailer signature"));
            }
            let Some(checksum) = &self.trailer_value else {
                return Err(AuthError::MalformedTrailer("the declared checksum trailer is missing"));
            };
            let Some(signing) = &self.signing else {
                return Err(AuthError::TrailerSignatureMismatch);
            };
            // The canonical trailer: `lowercase-name:trimmed-value\n` per header, sorted by
            // name; the checksum is the only trailer header accepted.
            let mut canonical = String::with_capacity(algorithm.header_name().len() + checksum.len() + 2);
            canonical.push_str(algorithm.header_name());
            canonical.push(':');
            canonical.push_str(checksum.to_str().map_err(|_| AuthError::TrailerSignatureMismatch)?);
            canonical.push('\n');
            let string_to_sign = signing.scope.string_to_sign(
                TRAILER_ALGORITHM,
                &format!("{}\n{}", self.prev_signature, sha256_hex(canonical.as_bytes())),
            );
            if !is_lower_hex_64(value) || !signing.key.verify_hex(string_to_sign.as_bytes(), value) {
                return Err(AuthError::TrailerSignatureMismatch);
            }
            self.trailer_signature_verified = true;
            Ok(())
        } else {
            Err(AuthError::MalformedTrailer("a trailer header other than the declared checksum"))
        }
    }
}

/// Parses a chunk header line (without CRLF): the chunk size and, when `signed`, the
/// `chunk-signature` extension. Other extensions are ignored.
fn parse_chunk_header(line: &[u8], signed: bool) -> Result<(u64, Option<String>), AuthError> {
    let (size, extensions) = match line.iter().position(|&b| b == b';') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let size = parse_hex_size(size)?;
    if !signed {
        return Ok((size, None));
    }
    let mut signature = None;
    for extension in extensions.into_iter().flat_map(|e| e.split(|&b| b == b';')) {
        let (name, value) = match extension.iter().position(|&b| b == b'=') {
            Some(i) => (&extension[..i], Some(&extension[i + 1..])),
            None => (extension, None),
        };
        if !name.eq_ignore_ascii_case(CHUNK_SIGNATURE) {
            continue;
        }
        if signature.is_some() {
            return Err(AuthError::MalformedChunk("duplicate chunk-signature"));
        }
        let value = value
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| is_lower_hex_64(v))
            .ok_or(AuthError::MalformedChunk("invalid chunk-signature"))?;
        signature = Some(value.to_owned());
    }
    match signature {
        Some(signature) => Ok((size, Some(signature))),
        None => Err(AuthError::MalformedChunk("missing chunk-signature")),
    }
}

/// Parses a chunk size: hex digits, either case.
fn parse_hex_size(digits: &[u8]) -> Result<u64, AuthError> {
    if digits.is_empty() {
        return Err(AuthError::MalformedChunk("empty chunk size"));
    }
    digits.iter().try_fold(0_u64, |size, &b| {
        let digit = char::from(b)
            .to_digit(16)
            .ok_or(AuthError::MalformedChunk("chunk size is not hexadecimal"))?;
        size.checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(AuthError::MalformedChunk("chunk size overflows"))
    })
}
