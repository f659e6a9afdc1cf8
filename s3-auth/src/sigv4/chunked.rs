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
use crate::sigv4::signing::{
    EMPTY_SHA256, SigningKey, SigningScope, is_lower_hex_64, lower_hex, sha256_hex,
};

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
            Stage::Running | Stage::Release => {
                SizeHint::with_exact(self.decoder.decoded_length.saturating_sub(self.yielded))
            }
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
                    if self.read_line(
                        input,
                        AuthError::MalformedChunk("chunk header not terminated by CRLF"),
                    )? {
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
                        _ => {
                            return Err(AuthError::MalformedChunk("missing CRLF after chunk data"));
                        }
                    };
                }
                Phase::Trailer => {
                    if self.read_line(
                        input,
                        AuthError::MalformedTrailer("trailer line not terminated by CRLF"),
                    )? {
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
            None if window.len() == input.len()
                && self.line.len() + window.len() <= MAX_LINE_LENGTH + 1 =>
            {
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
        let total = self.declared.saturating_add(size);
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
            let hash = lower_hex(hash.finish().as_ref());
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
                return Err(AuthError::MalformedTrailer(
                    "the declared checksum trailer is missing",
                ));
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
            return Err(AuthError::MalformedTrailer(
                "a trailer that x-amz-trailer does not declare",
            ));
        };
        let line = std::mem::take(&mut self.line);
        let result = self.trailer_header(algorithm, &line);
        // Keep the buffer's allocation for the next line.
        self.line = line;
        self.line.clear();
        result
    }

    fn trailer_header(
        &mut self,
        algorithm: ChecksumAlgorithm,
        line: &[u8],
    ) -> Result<(), AuthError> {
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
                return Err(AuthError::MalformedTrailer(
                    "the declared checksum trailer is missing",
                ));
            };
            let Some(signing) = &self.signing else {
                return Err(AuthError::TrailerSignatureMismatch);
            };
            // The canonical trailer: `lowercase-name:trimmed-value\n` per header, sorted by
            // name; the checksum is the only trailer header accepted.
            let mut canonical =
                String::with_capacity(algorithm.header_name().len() + checksum.len() + 2);
            canonical.push_str(algorithm.header_name());
            canonical.push(':');
            canonical.push_str(
                checksum
                    .to_str()
                    .map_err(|_| AuthError::TrailerSignatureMismatch)?,
            );
            canonical.push('\n');
            let string_to_sign = signing.scope.string_to_sign(
                TRAILER_ALGORITHM,
                &format!(
                    "{}\n{}",
                    self.prev_signature,
                    sha256_hex(canonical.as_bytes())
                ),
            );
            if !is_lower_hex_64(value) || !signing.key.verify_hex(string_to_sign.as_bytes(), value)
            {
                return Err(AuthError::TrailerSignatureMismatch);
            }
            self.trailer_signature_verified = true;
            Ok(())
        } else {
            Err(AuthError::MalformedTrailer(
                "a trailer header other than the declared checksum",
            ))
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::{Duration, SystemTime};

    use http_body_util::{BodyExt as _, Full};

    use super::*;

    // The AWS documentation examples ("sigv4-streaming", "sigv4-streaming-trailers").
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const AMZ_DATE: &str = "20130524T000000Z";
    const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
    const TRAILER_SEED: &str = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e";

    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_hours(380_376)
    }

    fn chunk_signing(seed: &str) -> ChunkSigning {
        ChunkSigning {
            key: SigningKey::derive(SECRET, time(), "us-east-1", "s3"),
            scope: SigningScope {
                amz_date: AMZ_DATE.into(),
                scope: SCOPE.into(),
            },
            seed_signature: seed.into(),
        }
    }

    fn config(
        seed: Option<&str>,
        trailer: Option<ChecksumAlgorithm>,
        trailer_signed: bool,
        decoded_length: usize,
    ) -> ChunkedConfig {
        ChunkedConfig {
            signing: seed.map(chunk_signing),
            trailer_signed,
            trailer,
            decoded_length: decoded_length as u64,
        }
    }

    fn hex_sha256(bytes: &[u8]) -> String {
        hex::encode(digest::digest(&digest::SHA256, bytes).as_ref())
    }

    /// An independent signer: aws-sigv4's key derivation and HMAC, the string to sign written
    /// out here from the AWS documentation.
    fn independent_signature(algorithm: &str, previous: &str, hashed: &str) -> String {
        let key = aws_sigv4::sign::v4::generate_signing_key(SECRET, time(), "us-east-1", "s3");
        let string_to_sign = format!("{algorithm}\n{AMZ_DATE}\n{SCOPE}\n{previous}\n{hashed}");
        aws_sigv4::sign::v4::calculate_signature(key, string_to_sign.as_bytes())
    }

    fn checksum_of(algorithm: ChecksumAlgorithm, payload: &[u8]) -> String {
        let mut hasher = algorithm.hasher();
        hasher.update(payload);
        hasher.finalize_base64()
    }

    /// Encodes aws-chunked bodies the way the SDKs do.
    #[derive(Clone, Default)]
    #[allow(clippy::struct_excessive_bools)]
    struct Encoder {
        /// `Some(seed)` signs the chunks.
        seed: Option<String>,
        upper_hex: bool,
        extensions: bool,
        /// The trailer line's name (as sent) and value.
        trailer: Option<(String, String)>,
        sign_trailer: bool,
        /// The empty line ending the body.
        terminator: bool,
    }

    impl Encoder {
        fn signed(seed: &str) -> Self {
            Self {
                seed: Some(seed.into()),
                terminator: true,
                ..Self::default()
            }
        }

        fn unsigned() -> Self {
            Self {
                terminator: true,
                ..Self::default()
            }
        }

        fn with_trailer(mut self, name: &str, value: &str, signed: bool) -> Self {
            self.trailer = Some((name.into(), value.into()));
            self.sign_trailer = signed;
            self
        }

        /// One piece per chunk, one for the final chunk, one for the trailer section.
        fn pieces(&self, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
            let mut previous = self.seed.clone();
            let mut pieces = Vec::new();
            for chunk in chunks.iter().copied().chain([&[][..]]) {
                let mut piece = if self.upper_hex {
                    format!("{:X}", chunk.len())
                } else {
                    format!("{:x}", chunk.len())
                }
                .into_bytes();
                if self.extensions {
                    piece.extend_from_slice(b";foo=bar;flag");
                }
                if let Some(previous) = &mut previous {
                    let signature = independent_signature(
                        "AWS4-HMAC-SHA256-PAYLOAD",
                        previous,
                        &format!("{EMPTY_SHA256}\n{}", hex_sha256(chunk)),
                    );
                    piece.extend_from_slice(b";chunk-signature=");
                    piece.extend_from_slice(signature.as_bytes());
                    *previous = signature;
                }
                if self.extensions && previous.is_some() {
                    piece.extend_from_slice(b";after=1");
                }
                piece.extend_from_slice(b"\r\n");
                if !chunk.is_empty() {
                    piece.extend_from_slice(chunk);
                    piece.extend_from_slice(b"\r\n");
                }
                pieces.push(piece);
            }
            let mut tail = Vec::new();
            if let Some((name, value)) = &self.trailer {
                tail.extend_from_slice(format!("{name}:{value}\r\n").as_bytes());
                if self.sign_trailer {
                    let canonical = format!("{}:{}\n", name.to_lowercase(), value.trim());
                    let signature = independent_signature(
                        "AWS4-HMAC-SHA256-TRAILER",
                        previous.as_deref().unwrap_or_default(),
                        &hex_sha256(canonical.as_bytes()),
                    );
                    tail.extend_from_slice(
                        format!("x-amz-trailer-signature:{signature}\r\n").as_bytes(),
                    );
                }
            }
            if self.terminator {
                tail.extend_from_slice(b"\r\n");
            }
            pieces.push(tail);
            pieces
        }

        fn encode(&self, chunks: &[&[u8]]) -> Vec<u8> {
            self.pieces(chunks).concat()
        }
    }

    /// A client body: the given frames, then an end, a pending forever, or an error.
    struct TestBody {
        frames: VecDeque<Bytes>,
        end: End,
    }

    #[derive(Clone, Copy)]
    enum End {
        Eof,
        Pending,
        Error,
    }

    impl TestBody {
        fn new(frames: Vec<Bytes>) -> Self {
            Self {
                frames: frames.into(),
                end: End::Eof,
            }
        }
    }

    impl Body for TestBody {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if let Some(frame) = self.frames.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            match self.end {
                End::Eof => Poll::Ready(None),
                End::Pending => Poll::Pending,
                End::Error => {
                    self.end = End::Eof;
                    Poll::Ready(Some(Err("client went away".into())))
                }
            }
        }
    }

    /// Frames of `size` bytes.
    fn fixed_frames(bytes: &[u8], size: usize) -> Vec<Bytes> {
        bytes.chunks(size).map(Bytes::copy_from_slice).collect()
    }

    /// Frames split at pseudo-random points (deterministic xorshift).
    fn random_frames(bytes: &[u8], mut seed: u64, max: usize) -> Vec<Bytes> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = usize::try_from(seed % max as u64).expect("small") + 1;
            let (frame, tail) = rest.split_at(n.min(rest.len()));
            frames.push(Bytes::copy_from_slice(frame));
            rest = tail;
        }
        frames
    }

    /// Ways to split `encoded` into frames: whole, 1-byte, random, and for small bodies every
    /// two-frame split.
    fn splittings(encoded: &[u8]) -> Vec<Vec<Bytes>> {
        let mut all = vec![
            vec![Bytes::copy_from_slice(encoded)],
            fixed_frames(encoded, 1),
            fixed_frames(encoded, 7),
        ];
        for seed in 1..=8 {
            all.push(random_frames(encoded, seed * 0x9E37_79B9, 200));
        }
        if encoded.len() <= 1024 {
            for cut in 1..encoded.len() {
                all.push(vec![
                    Bytes::copy_from_slice(&encoded[..cut]),
                    Bytes::copy_from_slice(&encoded[cut..]),
                ]);
            }
        }
        all
    }

    /// What a decoded body yielded.
    #[derive(Debug, Default)]
    struct Outcome {
        data: Vec<u8>,
        trailers: Option<HeaderMap>,
        error: Option<AuthError>,
    }

    async fn run_body<B>(mut body: AwsChunkedBody<B>) -> Outcome
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let mut outcome = Outcome::default();
        while let Some(frame) = body.frame().await {
            assert!(outcome.trailers.is_none(), "a frame after the trailers");
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) => {
                        assert!(!data.is_empty(), "an empty data frame");
                        outcome.data.extend_from_slice(&data);
                    }
                    Err(frame) => outcome.trailers = frame.into_trailers().ok(),
                },
                Err(VerifyError::Auth(error)) => {
                    outcome.error = Some(error);
                    assert!(body.frame().await.is_none(), "a frame after the error");
                    assert!(body.is_end_stream());
                    break;
                }
                Err(VerifyError::Inner(error)) => panic!("inner error {error}"),
            }
        }
        outcome
    }

    async fn run(config: &ChunkedConfig, frames: Vec<Bytes>) -> Outcome {
        run_body(AwsChunkedBody::new(TestBody::new(frames), config.clone())).await
    }

    /// Decodes `encoded` under every splitting; each must yield `payload` (and the checksum
    /// trailer, if configured).
    async fn assert_decodes(config: &ChunkedConfig, encoded: &[u8], payload: &[u8]) {
        for frames in splittings(encoded) {
            let outcome = run(config, frames).await;
            assert_eq!(outcome.error, None);
            assert!(outcome.data == payload, "decoded payload differs");
            match config.trailer {
                Some(algorithm) => {
                    let trailers = outcome.trailers.expect("checksum trailers");
                    assert_eq!(trailers.len(), 1);
                    assert_eq!(
                        trailers.get(algorithm.header_name()).expect("checksum"),
                        checksum_of(algorithm, payload).as_str()
                    );
                }
                None => assert!(outcome.trailers.is_none()),
            }
        }
    }

    /// Decodes `encoded` under every splitting; each must fail with `expected`, without ever
    /// yielding the payload's last byte.
    async fn assert_fails(
        config: &ChunkedConfig,
        encoded: &[u8],
        payload_len: usize,
        expected: &AuthError,
    ) {
        for frames in splittings(encoded) {
            let outcome = run(config, frames).await;
            assert_eq!(outcome.error.as_ref(), Some(expected));
            assert!(outcome.trailers.is_none());
            assert!(
                payload_len == 0 || outcome.data.len() < payload_len,
                "the last payload byte was released before verification"
            );
        }
    }

    fn small_chunks() -> (Vec<u8>, Vec<&'static [u8]>) {
        let chunks: Vec<&'static [u8]> = vec![b"hello ", b"aws-chunked", b" world!"];
        (chunks.concat(), chunks)
    }

    fn aws_example_payload() -> Vec<u8> {
        vec![b'a'; 66560]
    }

    #[tokio::test]
    async fn decodes_the_documented_signed_example() {
        let payload = aws_example_payload();
        let encoded = Encoder::signed(SEED).encode(&[&payload[..65536], &payload[65536..]]);
        // The chunk signatures of the AWS documentation, independent of any signer here.
        let text = String::from_utf8_lossy(&encoded);
        for signature in [
            "10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n",
            "400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n",
            "0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n",
        ] {
            assert!(text.contains(signature), "{signature}");
        }
        let config = config(Some(SEED), None, false, payload.len());
        assert_decodes(&config, &encoded, &payload).await;
    }

    #[tokio::test]
    async fn decodes_the_documented_signed_trailer_example() {
        let payload = aws_example_payload();
        let mut encoded = Vec::new();
        encoded.extend_from_slice(b"10000;chunk-signature=b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2\r\n");
        encoded.extend_from_slice(&payload[..65536]);
        encoded.extend_from_slice(b"\r\n400;chunk-signature=1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7\r\n");
        encoded.extend_from_slice(&payload[65536..]);
        encoded.extend_from_slice(b"\r\n0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n");
        encoded.extend_from_slice(b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n");
        let config = config(
            Some(TRAILER_SEED),
            Some(ChecksumAlgorithm::Crc32c),
            true,
            payload.len(),
        );
        assert_decodes(&config, &encoded, &payload).await;
        // The same through BodyExt::collect.
        let collected = AwsChunkedBody::new(Full::new(Bytes::from(encoded)), config)
            .collect()
            .await
            .expect("verified");
        let trailers = collected.trailers().cloned().expect("trailers");
        assert_eq!(
            trailers.get("x-amz-checksum-crc32c").expect("crc32c"),
            "sOO8/Q=="
        );
        assert_eq!(collected.to_bytes(), payload);
    }

    #[tokio::test]
    async fn decodes_signed_small_bodies_split_anywhere() {
        let (payload, chunks) = small_chunks();
        let encoded = Encoder::signed(SEED).encode(&chunks);
        assert_decodes(
            &config(Some(SEED), None, false, payload.len()),
            &encoded,
            &payload,
        )
        .await;
    }

    #[tokio::test]
    async fn decodes_signed_trailers_of_every_algorithm() {
        let (payload, chunks) = small_chunks();
        for algorithm in ChecksumAlgorithm::ALL {
            let value = checksum_of(algorithm, &payload);
            // The header name is matched case-insensitively.
            for name in [
                algorithm.header_name().to_owned(),
                algorithm.header_name().to_uppercase(),
            ] {
                let encoded = Encoder::signed(TRAILER_SEED)
                    .with_trailer(&name, &value, true)
                    .encode(&chunks);
                let config = config(Some(TRAILER_SEED), Some(algorithm), true, payload.len());
                assert_decodes(&config, &encoded, &payload).await;
            }
        }
    }

    #[tokio::test]
    async fn decodes_unsigned_trailers_of_every_algorithm() {
        let (payload, chunks) = small_chunks();
        for algorithm in ChecksumAlgorithm::ALL {
            let value = checksum_of(algorithm, &payload);
            let encoded = Encoder::unsigned()
                .with_trailer(algorithm.header_name(), &value, false)
                .encode(&chunks);
            let config = config(None, Some(algorithm), false, payload.len());
            assert_decodes(&config, &encoded, &payload).await;
        }
    }

    #[tokio::test]
    async fn decodes_upper_case_sizes_and_extensions() {
        let payload = vec![0xAB_u8; 300];
        let chunks: Vec<&[u8]> = vec![&payload[..200], &payload[200..]];
        for seed in [Some(SEED), None] {
            let mut encoder = match seed {
                Some(seed) => Encoder::signed(seed),
                None => Encoder::unsigned(),
            };
            encoder.upper_hex = true;
            encoder.extensions = true;
            let encoded = encoder.encode(&chunks);
            assert!(encoded.starts_with(b"C8;foo=bar;flag"));
            assert_decodes(
                &config(seed, None, false, payload.len()),
                &encoded,
                &payload,
            )
            .await;
        }
    }

    #[tokio::test]
    async fn decodes_zero_length_payloads() {
        let encoded = Encoder::signed(SEED).encode(&[]);
        assert_decodes(&config(Some(SEED), None, false, 0), &encoded, b"").await;

        let value = checksum_of(ChecksumAlgorithm::Crc32, b"");
        let encoded = Encoder::signed(TRAILER_SEED)
            .with_trailer("x-amz-checksum-crc32", &value, true)
            .encode(&[]);
        let config_signed = config(Some(TRAILER_SEED), Some(ChecksumAlgorithm::Crc32), true, 0);
        assert_decodes(&config_signed, &encoded, b"").await;

        let encoded = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32", &value, false)
            .encode(&[]);
        let config_unsigned = config(None, Some(ChecksumAlgorithm::Crc32), false, 0);
        assert_decodes(&config_unsigned, &encoded, b"").await;
    }

    #[tokio::test]
    async fn accepts_a_complete_trailer_without_the_final_empty_line() {
        let (payload, chunks) = small_chunks();
        let value = checksum_of(ChecksumAlgorithm::Sha256, &payload);
        let mut encoder =
            Encoder::signed(TRAILER_SEED).with_trailer("x-amz-checksum-sha256", &value, true);
        encoder.terminator = false;
        let config = config(
            Some(TRAILER_SEED),
            Some(ChecksumAlgorithm::Sha256),
            true,
            payload.len(),
        );
        assert_decodes(&config, &encoder.encode(&chunks), &payload).await;
    }

    #[tokio::test]
    async fn reports_the_remaining_decoded_length() {
        let (payload, chunks) = small_chunks();
        let encoded = Encoder::signed(SEED).encode(&chunks);
        let mut body = AwsChunkedBody::new(
            TestBody::new(fixed_frames(&encoded, 10)),
            config(Some(SEED), None, false, payload.len()),
        );
        assert_eq!(body.size_hint().exact(), Some(payload.len() as u64));
        let mut seen = 0;
        while let Some(frame) = body.frame().await {
            seen += frame.expect("verified").into_data().expect("data").len();
            assert_eq!(
                body.size_hint().exact(),
                Some((payload.len() - seen) as u64)
            );
        }
        assert_eq!(seen, payload.len());
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }

    #[tokio::test]
    async fn passes_inner_errors_and_stops() {
        let (payload, chunks) = small_chunks();
        let encoded = Encoder::signed(SEED).encode(&chunks);
        let mut inner = TestBody::new(vec![Bytes::copy_from_slice(&encoded[..40])]);
        inner.end = End::Error;
        let mut body = AwsChunkedBody::new(inner, config(Some(SEED), None, false, payload.len()));
        loop {
            match body.frame().await.expect("a frame") {
                Ok(_) => {}
                Err(VerifyError::Inner(_)) => break,
                Err(VerifyError::Auth(error)) => panic!("{error}"),
            }
        }
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn rejects_tampered_chunk_data() {
        let (payload, chunks) = small_chunks();
        let encoder = Encoder::signed(SEED);
        let config = config(Some(SEED), None, false, payload.len());
        for chunk in 0..chunks.len() {
            let mut pieces = encoder.pieces(&chunks);
            let last = pieces[chunk].len() - 3;
            pieces[chunk][last] ^= 0x20;
            assert_fails(
                &config,
                &pieces.concat(),
                payload.len(),
                &AuthError::ChunkSignatureMismatch,
            )
            .await;
        }
    }

    #[tokio::test]
    async fn rejects_tampered_chunk_signatures() {
        let (payload, chunks) = small_chunks();
        let encoder = Encoder::signed(SEED);
        let config = config(Some(SEED), None, false, payload.len());
        // Every chunk including the final one.
        for chunk in 0..=chunks.len() {
            let mut pieces = encoder.pieces(&chunks);
            let at = pieces[chunk]
                .windows(16)
                .position(|w| w == b"chunk-signature=")
                .expect("signature")
                + 20;
            pieces[chunk][at] = if pieces[chunk][at] == b'0' {
                b'1'
            } else {
                b'0'
            };
            assert_fails(
                &config,
                &pieces.concat(),
                payload.len(),
                &AuthError::ChunkSignatureMismatch,
            )
            .await;
        }
        // A wrong seed.
        let encoded = encoder.encode(&chunks);
        let wrong_seed = config_with_seed(&config, TRAILER_SEED);
        assert_fails(
            &wrong_seed,
            &encoded,
            payload.len(),
            &AuthError::ChunkSignatureMismatch,
        )
        .await;
    }

    fn config_with_seed(config: &ChunkedConfig, seed: &str) -> ChunkedConfig {
        let mut config = config.clone();
        config.signing = Some(chunk_signing(seed));
        config
    }

    #[tokio::test]
    async fn rejects_reordered_and_dropped_chunks() {
        let chunks: Vec<&[u8]> = vec![b"first chunk", b"second chunk", b"third chunk!"];
        let payload = chunks.concat();
        let encoder = Encoder::signed(SEED);
        let config = config(Some(SEED), None, false, payload.len());

        let mut pieces = encoder.pieces(&chunks);
        pieces.swap(0, 1);
        assert_fails(
            &config,
            &pieces.concat(),
            payload.len(),
            &AuthError::ChunkSignatureMismatch,
        )
        .await;

        for dropped in 0..chunks.len() {
            let mut pieces = encoder.pieces(&chunks);
            pieces.remove(dropped);
            let shorter = payload.len() - chunks[dropped].len();
            // Whether or not the declared length still fits, the signature chain breaks.
            for length in [payload.len(), shorter] {
                let mut config = config.clone();
                config.decoded_length = length as u64;
                assert_fails(
                    &config,
                    &pieces.concat(),
                    shorter,
                    &AuthError::ChunkSignatureMismatch,
                )
                .await;
            }
        }
        // Chunks spliced in from another signed upload (another seed).
        let foreign = Encoder::signed(TRAILER_SEED).pieces(&chunks);
        let mut pieces = encoder.pieces(&chunks);
        pieces[1].clone_from(&foreign[1]);
        assert_fails(
            &config,
            &pieces.concat(),
            payload.len(),
            &AuthError::ChunkSignatureMismatch,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_truncated_bodies() {
        let (payload, chunks) = small_chunks();
        let value = checksum_of(ChecksumAlgorithm::Crc32c, &payload);
        let cases = [
            (
                Encoder::signed(SEED),
                config(Some(SEED), None, false, payload.len()),
            ),
            (
                Encoder::signed(TRAILER_SEED).with_trailer("x-amz-checksum-crc32c", &value, true),
                config(
                    Some(TRAILER_SEED),
                    Some(ChecksumAlgorithm::Crc32c),
                    true,
                    payload.len(),
                ),
            ),
            (
                Encoder::unsigned().with_trailer("x-amz-checksum-crc32c", &value, false),
                config(None, Some(ChecksumAlgorithm::Crc32c), false, payload.len()),
            ),
        ];
        for (encoder, config) in cases {
            let pieces = encoder.pieces(&chunks);
            // Up to the end of the final chunk header, or of the last trailer line but one
            // character; beyond it the body is complete but for the optional empty line.
            let tail = pieces.last().expect("tail");
            let complete = pieces.concat().len()
                - 2
                - usize::from(config.trailer.is_none()) * (tail.len() - 2);
            let encoded = pieces.concat();
            for cut in 0..complete {
                for frames in [
                    vec![Bytes::copy_from_slice(&encoded[..cut])],
                    fixed_frames(&encoded[..cut], 1),
                ] {
                    let outcome = run(&config, frames).await;
                    assert_eq!(
                        outcome.error,
                        Some(AuthError::IncompleteBody),
                        "cut at {cut}"
                    );
                    assert!(outcome.data.len() < payload.len());
                }
            }
        }
    }

    #[tokio::test]
    async fn rejects_a_wrong_trailer_checksum() {
        let (payload, chunks) = small_chunks();
        for algorithm in ChecksumAlgorithm::ALL {
            let wrong = checksum_of(algorithm, b"something else");
            let expected = AuthError::ChecksumMismatch(algorithm);
            let encoded = Encoder::signed(TRAILER_SEED)
                .with_trailer(algorithm.header_name(), &wrong, true)
                .encode(&chunks);
            let signed = config(Some(TRAILER_SEED), Some(algorithm), true, payload.len());
            assert_fails(&signed, &encoded, payload.len(), &expected).await;

            let encoded = Encoder::unsigned()
                .with_trailer(algorithm.header_name(), &wrong, false)
                .encode(&chunks);
            let unsigned = config(None, Some(algorithm), false, payload.len());
            assert_fails(&unsigned, &encoded, payload.len(), &expected).await;
        }
    }

    #[tokio::test]
    async fn rejects_missing_and_unexpected_trailers() {
        let (payload, chunks) = small_chunks();
        let value = checksum_of(ChecksumAlgorithm::Crc32, &payload);
        let signed = config(
            Some(TRAILER_SEED),
            Some(ChecksumAlgorithm::Crc32),
            true,
            payload.len(),
        );
        let unsigned = config(None, Some(ChecksumAlgorithm::Crc32), false, payload.len());

        // Declared but not sent.
        let encoded = Encoder::signed(TRAILER_SEED).encode(&chunks);
        assert_fails(
            &signed,
            &encoded,
            payload.len(),
            &AuthError::MalformedTrailer("the declared checksum trailer is missing"),
        )
        .await;
        let encoded = Encoder::unsigned().encode(&chunks);
        assert_fails(
            &unsigned,
            &encoded,
            payload.len(),
            &AuthError::MalformedTrailer("the declared checksum trailer is missing"),
        )
        .await;

        // Another checksum than the declared one.
        let other = checksum_of(ChecksumAlgorithm::Crc32c, &payload);
        let encoded = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32c", &other, false)
            .encode(&chunks);
        assert_fails(
            &unsigned,
            &encoded,
            payload.len(),
            &AuthError::MalformedTrailer("a trailer header other than the declared checksum"),
        )
        .await;

        // A trailer when none is declared.
        let encoded = Encoder::signed(SEED)
            .with_trailer("x-amz-checksum-crc32", &value, false)
            .encode(&chunks);
        assert_fails(
            &config(Some(SEED), None, false, payload.len()),
            &encoded,
            payload.len(),
            &AuthError::MalformedTrailer("a trailer that x-amz-trailer does not declare"),
        )
        .await;

        // An extra header after the checksum.
        let mut pieces = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32", &value, false)
            .pieces(&chunks);
        let tail = pieces.last_mut().expect("tail");
        tail.splice(
            tail.len() - 2..,
            b"x-amz-meta-evil:1\r\n\r\n".iter().copied(),
        );
        assert_fails(
            &unsigned,
            &pieces.concat(),
            payload.len(),
            &AuthError::MalformedTrailer("a trailer header other than the declared checksum"),
        )
        .await;

        // A duplicate checksum header.
        let mut pieces = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32", &value, false)
            .pieces(&chunks);
        let tail = pieces.last_mut().expect("tail");
        let line = format!("x-amz-checksum-crc32:{value}\r\n\r\n");
        tail.splice(tail.len() - 2.., line.bytes());
        assert_fails(
            &unsigned,
            &pieces.concat(),
            payload.len(),
            &AuthError::MalformedTrailer("duplicate checksum trailer"),
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_too_many_trailer_lines() {
        let (payload, chunks) = small_chunks();
        let mut decoder = Decoder::new(config(
            None,
            Some(ChecksumAlgorithm::Crc32),
            false,
            payload.len(),
        ));
        // Drive the decoder to the trailer, then feed lines it would accept if not counted.
        let mut input = Bytes::from(Encoder::unsigned().pieces(&chunks)[..=chunks.len()].concat());
        while decoder.decode(&mut input).expect("valid chunks").is_some() {}
        assert_eq!(decoder.phase, Phase::Trailer);
        decoder.trailer_lines = MAX_TRAILER_LINES;
        let mut line = Bytes::from_static(b"x-amz-checksum-crc32:AAAAAA==\r\n");
        assert_eq!(
            decoder.decode(&mut line),
            Err(AuthError::MalformedTrailer("too many trailer lines"))
        );
    }

    #[tokio::test]
    async fn rejects_unsigned_and_wrongly_signed_trailers_on_signed_uploads() {
        let (payload, chunks) = small_chunks();
        let value = checksum_of(ChecksumAlgorithm::Sha1, &payload);
        let config = config(
            Some(TRAILER_SEED),
            Some(ChecksumAlgorithm::Sha1),
            true,
            payload.len(),
        );

        // No x-amz-trailer-signature line.
        let encoded = Encoder::signed(TRAILER_SEED)
            .with_trailer("x-amz-checksum-sha1", &value, false)
            .encode(&chunks);
        assert_fails(
            &config,
            &encoded,
            payload.len(),
            &AuthError::TrailerSignatureMismatch,
        )
        .await;

        // A wrong signature, a malformed one, one from another chain.
        let pieces = Encoder::signed(TRAILER_SEED)
            .with_trailer("x-amz-checksum-sha1", &value, true)
            .pieces(&chunks);
        let tail = String::from_utf8(pieces.last().expect("tail").clone()).expect("ascii");
        let (head, signature) = tail
            .split_once("x-amz-trailer-signature:")
            .expect("signature");
        let signature = &signature[..64];
        let mut flipped = signature.to_owned();
        flipped.replace_range(..1, if signature.starts_with('0') { "1" } else { "0" });
        let foreign = independent_signature(
            "AWS4-HMAC-SHA256-TRAILER",
            SEED,
            &hex_sha256(format!("x-amz-checksum-sha1:{value}\n").as_bytes()),
        );
        for bad in [flipped, signature.to_uppercase(), "00".into(), foreign] {
            let mut bad_pieces = pieces.clone();
            *bad_pieces.last_mut().expect("tail") =
                format!("{head}x-amz-trailer-signature:{bad}\r\n\r\n").into_bytes();
            assert_fails(
                &config,
                &bad_pieces.concat(),
                payload.len(),
                &AuthError::TrailerSignatureMismatch,
            )
            .await;
        }

        // A signature line before the checksum.
        let mut reordered = pieces.clone();
        let lines: Vec<&str> = tail.split_inclusive("\r\n").collect();
        *reordered.last_mut().expect("tail") =
            format!("{}{}{}", lines[1], lines[0], lines[2]).into_bytes();
        assert_fails(
            &config,
            &reordered.concat(),
            payload.len(),
            &AuthError::MalformedTrailer("the declared checksum trailer is missing"),
        )
        .await;

        // A tampered checksum value with the original signature.
        let wrong = checksum_of(ChecksumAlgorithm::Sha1, b"other");
        let mut tampered = pieces;
        *tampered.last_mut().expect("tail") = tail.replace(&value, &wrong).into_bytes();
        assert_fails(
            &config,
            &tampered.concat(),
            payload.len(),
            &AuthError::ChecksumMismatch(ChecksumAlgorithm::Sha1),
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_wrong_decoded_lengths() {
        let (payload, chunks) = small_chunks();
        let encoded = Encoder::signed(SEED).encode(&chunks);
        let len = payload.len() as u64;

        // Declared shorter than sent: refused at the header that exceeds it.
        let short = config(Some(SEED), None, false, payload.len() - 1);
        let expected = AuthError::DecodedLengthMismatch {
            declared: len - 1,
            actual: len,
        };
        assert_fails(&short, &encoded, payload.len(), &expected).await;
        let first = config(Some(SEED), None, false, 3);
        let expected = AuthError::DecodedLengthMismatch {
            declared: 3,
            actual: chunks[0].len() as u64,
        };
        let outcome = run(&first, vec![Bytes::copy_from_slice(&encoded)]).await;
        assert_eq!(outcome.error, Some(expected));
        assert!(outcome.data.is_empty());

        // Declared longer than sent: refused at the final chunk.
        let long = config(Some(SEED), None, false, payload.len() + 1);
        let expected = AuthError::DecodedLengthMismatch {
            declared: len + 1,
            actual: len,
        };
        assert_fails(&long, &encoded, payload.len(), &expected).await;

        // Unsigned too.
        let encoded = Encoder::unsigned().encode(&chunks);
        let expected = AuthError::DecodedLengthMismatch {
            declared: len + 5,
            actual: len,
        };
        assert_fails(
            &config(None, None, false, payload.len() + 5),
            &encoded,
            payload.len(),
            &expected,
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_oversized_lines_without_buffering_them() {
        let (payload, chunks) = small_chunks();
        let signed = config(Some(SEED), None, false, payload.len());
        let mut pieces = Encoder::signed(SEED).pieces(&chunks);
        let mut header = b"6;x=".to_vec();
        header.resize(MAX_LINE_LENGTH + 10, b'a');
        pieces[0].splice(1..1, header[1..].iter().copied());
        assert_fails(
            &signed,
            &pieces.concat(),
            payload.len(),
            &AuthError::ChunkHeaderTooLong(MAX_LINE_LENGTH),
        )
        .await;

        // A header line that never ends: refused once past the limit, without waiting for
        // (or buffering) the rest of the body.
        for frame_size in [1, 100, 1 << 20] {
            let endless = vec![b'a'; 1 << 21];
            let mut inner = TestBody::new(fixed_frames(&endless, frame_size));
            inner.end = End::Pending;
            let mut body = AwsChunkedBody::new(inner, signed.clone());
            let frame = body.frame().await.expect("a frame");
            assert!(matches!(
                frame,
                Err(VerifyError::Auth(AuthError::ChunkHeaderTooLong(
                    MAX_LINE_LENGTH
                )))
            ));
            assert!(body.decoder.line.len() <= MAX_LINE_LENGTH + 1);
            assert!(body.frame().await.is_none());
        }

        // A trailer line too.
        let value = checksum_of(ChecksumAlgorithm::Crc32, &payload);
        let trailer_config = config(None, Some(ChecksumAlgorithm::Crc32), false, payload.len());
        let padded = format!("{value}{}", " ".repeat(MAX_LINE_LENGTH));
        let encoded = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32", &padded, false)
            .encode(&chunks);
        assert_fails(
            &trailer_config,
            &encoded,
            payload.len(),
            &AuthError::ChunkHeaderTooLong(MAX_LINE_LENGTH),
        )
        .await;

        // Exactly at the limit is accepted.
        let padded = format!(
            "{value}{}",
            " ".repeat(MAX_LINE_LENGTH - "x-amz-checksum-crc32:".len() - value.len())
        );
        let encoded = Encoder::unsigned()
            .with_trailer("x-amz-checksum-crc32", &padded, false)
            .encode(&chunks);
        let outcome = run(&trailer_config, fixed_frames(&encoded, 1)).await;
        assert_eq!(outcome.error, None);
    }

    #[tokio::test]
    async fn rejects_malformed_framing() {
        let (payload, chunks) = small_chunks();
        let signed = config(Some(SEED), None, false, payload.len());
        let unsigned = config(None, None, false, payload.len());
        let pieces = Encoder::signed(SEED).pieces(&chunks);
        let unsigned_pieces = Encoder::unsigned().pieces(&chunks);

        let with_first = |pieces: &[Vec<u8>], first: &[u8]| {
            let mut pieces = pieces.to_vec();
            pieces[0] = first.to_vec();
            pieces.concat()
        };
        let cases: Vec<(&ChunkedConfig, Vec<u8>, AuthError)> = vec![
            (
                &unsigned,
                with_first(&unsigned_pieces, b"zz\r\nhello \r\n"),
                AuthError::MalformedChunk("chunk size is not hexadecimal"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"-6\r\nhello \r\n"),
                AuthError::MalformedChunk("chunk size is not hexadecimal"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b" 6\r\nhello \r\n"),
                AuthError::MalformedChunk("chunk size is not hexadecimal"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"\r\nhello \r\n"),
                AuthError::MalformedChunk("empty chunk size"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"10000000000000006\r\nhello \r\n"),
                AuthError::MalformedChunk("chunk size overflows"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"6\nhello \r\n"),
                AuthError::MalformedChunk("chunk header not terminated by CRLF"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"6\r\nhello X\r\n"),
                AuthError::MalformedChunk("missing CRLF after chunk data"),
            ),
            (
                &unsigned,
                with_first(&unsigned_pieces, b"6\r\nhello \n"),
                AuthError::MalformedChunk("missing CRLF after chunk data"),
            ),
            (
                &signed,
                with_first(&pieces, b"6\r\nhello \r\n"),
                AuthError::MalformedChunk("missing chunk-signature"),
            ),
            (
                &signed,
                with_first(&pieces, b"6;chunk-signature=abc\r\nhello \r\n"),
                AuthError::MalformedChunk("invalid chunk-signature"),
            ),
            (
                &signed,
                with_first(&pieces, b"6;chunk-signature\r\nhello \r\n"),
                AuthError::MalformedChunk("invalid chunk-signature"),
            ),
            (
                &signed,
                with_first(
                    &pieces,
                    &[&pieces[0][..pieces[0].len() - 2], b"X\n".as_slice()].concat(),
                ),
                AuthError::MalformedChunk("missing CRLF after chunk data"),
            ),
        ];
        for (config, encoded, expected) in cases {
            assert_fails(config, &encoded, payload.len(), &expected).await;
        }

        // An upper-case chunk signature is not what SigV4 sends.
        let mut upper = pieces.clone();
        let text = String::from_utf8(upper[0].clone()).expect("ascii");
        let (size, rest) = text.split_once("\r\n").expect("header");
        upper[0] = format!(
            "{}\r\n{rest}",
            size.to_uppercase()
                .replace("CHUNK-SIGNATURE", "chunk-signature")
        )
        .into_bytes();
        assert_fails(
            &signed,
            &upper.concat(),
            payload.len(),
            &AuthError::MalformedChunk("invalid chunk-signature"),
        )
        .await;

        // Two signatures on one chunk.
        let mut twice = pieces.clone();
        let (header, data) = text.split_once("\r\n").expect("header");
        let signature = header.split_once('=').expect("signature").1;
        twice[0] = format!("{header};chunk-signature={signature}\r\n{data}").into_bytes();
        assert_fails(
            &signed,
            &twice.concat(),
            payload.len(),
            &AuthError::MalformedChunk("duplicate chunk-signature"),
        )
        .await;
    }

    #[tokio::test]
    async fn rejects_data_after_the_final_chunk() {
        let (payload, chunks) = small_chunks();
        let expected = AuthError::MalformedChunk("data after the final chunk");
        let value = checksum_of(ChecksumAlgorithm::Crc64Nvme, &payload);
        let cases = [
            (
                Encoder::signed(SEED),
                config(Some(SEED), None, false, payload.len()),
            ),
            (
                Encoder::signed(TRAILER_SEED).with_trailer(
                    "x-amz-checksum-crc64nvme",
                    &value,
                    true,
                ),
                config(
                    Some(TRAILER_SEED),
                    Some(ChecksumAlgorithm::Crc64Nvme),
                    true,
                    payload.len(),
                ),
            ),
            (
                Encoder::unsigned().with_trailer("x-amz-checksum-crc64nvme", &value, false),
                config(
                    None,
                    Some(ChecksumAlgorithm::Crc64Nvme),
                    false,
                    payload.len(),
                ),
            ),
        ];
        for (encoder, config) in cases {
            for extra in [&b"x"[..], b"\r\n", b"5\r\nhello\r\n0\r\n\r\n"] {
                let mut encoded = encoder.encode(&chunks);
                encoded.extend_from_slice(extra);
                assert_fails(&config, &encoded, payload.len(), &expected).await;
            }
        }
    }

    #[tokio::test]
    async fn ignores_the_client_bodys_trailers() {
        struct WithTrailers(Option<Bytes>, bool);
        impl Body for WithTrailers {
            type Data = Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
                if let Some(data) = self.0.take() {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if std::mem::take(&mut self.1) {
                    let mut map = HeaderMap::new();
                    map.insert("x-amz-checksum-crc32", HeaderValue::from_static("AAAAAA=="));
                    return Poll::Ready(Some(Ok(Frame::trailers(map))));
                }
                Poll::Ready(None)
            }
        }
        let (payload, chunks) = small_chunks();
        let encoded = Encoder::signed(SEED).encode(&chunks);
        let body = AwsChunkedBody::new(
            WithTrailers(Some(Bytes::from(encoded)), true),
            config(Some(SEED), None, false, payload.len()),
        );
        let outcome = run_body(body).await;
        assert_eq!(outcome.error, None);
        assert_eq!(outcome.data, payload);
        assert!(outcome.trailers.is_none());
    }

    #[tokio::test]
    async fn holds_back_the_last_slice_until_verified() {
        // The payload's last byte stays held while the final chunk is missing.
        let (payload, chunks) = small_chunks();
        let pieces = Encoder::signed(SEED).pieces(&chunks);
        let mut inner = TestBody::new(vec![Bytes::from(pieces[..chunks.len()].concat())]);
        inner.end = End::Pending;
        let mut body = AwsChunkedBody::new(inner, config(Some(SEED), None, false, payload.len()));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut seen = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            seen.extend_from_slice(&frame.expect("verified so far").into_data().expect("data"));
        }
        assert_eq!(
            seen,
            payload[..payload.len() - chunks[chunks.len() - 1].len()]
        );
    }

    /// Data frames sliced zero-copy: one frame of a big chunk comes out as one slice of it.
    #[tokio::test]
    async fn slices_data_without_copying() {
        let payload = aws_example_payload();
        let encoded =
            Bytes::from(Encoder::signed(SEED).encode(&[&payload[..65536], &payload[65536..]]));
        let range = encoded.as_ptr_range();
        let mut body = AwsChunkedBody::new(
            TestBody::new(vec![encoded.clone()]),
            config(Some(SEED), None, false, payload.len()),
        );
        while let Some(frame) = body.frame().await {
            let data = frame.expect("verified").into_data().expect("data");
            assert!(range.contains(&data.as_ptr()));
        }
    }
}
