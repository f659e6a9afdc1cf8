//! The v1 segment format (architecture §8a): the 16-byte segment header, the per-part stream
//! key, sealing and opening one segment, and the size arithmetic between plaintext and
//! ciphertext.
//!
//! A stream (a single PUT, or one part of a multipart upload) is a sequence of segments, each
//! `header(16) || AES-256-GCM(payload) || tag(16)`, with payloads of exactly [`SEGMENT_SIZE`]
//! bytes except the last, which carries the FINAL flag (an empty stream is one empty FINAL
//! segment). The nonce is `stream_id(8) || be32(segment index)` and the whole header is the
//! associated data, so a segment cannot be moved, dropped, flagged differently or spliced in
//! from another stream without failing authentication or a structural check.
//!
//! The stream id is `random(5) || be24(segments in this stream)`. The segment count (0 when
//! the writer did not know the length in advance, or when it does not fit 24 bits) lets a
//! range read of a multipart object, which starts at some segment in the middle of some
//! part, work out that segment's index inside its part from the segment alone, without
//! asking the backend where the parts begin. 40 random bits per attempt still make a nonce
//! repeat between two attempts of the same part (same key, same count) negligible: with
//! `k` attempts of one part the chance is about `k² / 2⁴¹`.
//!
//! A multipart object is the concatenation of its part streams in part order, part `p`
//! sealed with [`StreamKey::derive`]`(dek, p)`. Every part but the last holds the same whole
//! number of segments, so global segment `g` sits at stored offset `g · U` and plaintext
//! offset `g · S` as in a single stream; see [`multipart_plaintext_size`].

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use bytes::BytesMut;
use zeroize::Zeroize;

use crate::EncryptError;

/// Plaintext bytes per segment (`S`): every segment but the last carries exactly this many.
pub const SEGMENT_SIZE: usize = 65536;
/// Bytes a segment adds to its payload: the header and the GCM tag.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Length of the segment header.
pub const HEADER_LEN: usize = 16;
/// Length of the AES-GCM tag that ends each segment.
pub const TAG_LEN: usize = 16;
/// Stored bytes of a full segment (`U = S + 32`).
pub const ENCRYPTED_SEGMENT_SIZE: usize = SEGMENT_SIZE + OVERHEAD;
/// The format version this module writes and the only one it reads.
pub const VERSION: u8 = 0x01;
/// The highest part number (S3 allows parts 1..=10000; 0 is a single PUT).
pub const MAX_PART: u16 = 10_000;

/// Header flag bit 0: this is the last segment of its stream.
const FLAG_FINAL: u8 = 0x01;
/// The HKDF `info` prefix; the big-endian part number follows.
const KDF_INFO: &[u8] = b"s3-tower/v1";

const S: u64 = SEGMENT_SIZE as u64;
const U: u64 = ENCRYPTED_SEGMENT_SIZE as u64;
const O: u64 = OVERHEAD as u64;

/// The 16-byte header in front of every segment, all of it authenticated as associated data.
///
/// Layout (big-endian): version (1) | flags, bit 0 = FINAL (1) | part (2) | payload length (4)
/// | stream id (8), where the stream id is `random(5) || be24(segments in the stream)`
/// ([`Header::stream_segments`]; 0 = unknown). The count is there so that a range read of a
/// multipart object can place a segment inside its part without extra backend requests; the
/// 40 random bits keep two attempts of the same part from sharing nonces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// This is the last segment of its stream; exactly one segment per stream has it.
    pub final_segment: bool,
    /// The part number: 0 for a single PUT, 1..=10000 for a multipart part.
    pub part: u16,
    /// Plaintext bytes in this segment: [`SEGMENT_SIZE`] unless `final_segment`.
    pub payload_len: u32,
    /// `random(5) || be24(segment count)`: random per PutObject / UploadPart attempt, so a
    /// retried part never reuses a nonce, then the number of segments in the stream (0 if
    /// unknown).
    pub stream_id: [u8; 8],
}

impl Header {
    /// The header's 16 bytes as stored.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = VERSION;
        out[1] = if self.final_segment { FLAG_FINAL } else { 0 };
        out[2..4].copy_from_slice(&self.part.to_be_bytes());
        out[4..8].copy_from_slice(&self.payload_len.to_be_bytes());
        out[8..16].copy_from_slice(&self.stream_id);
        out
    }

    /// The number of segments in this segment's stream, from the last three bytes of the
    /// stream id; `None` when the writer did not know it (0).
    pub fn stream_segments(&self) -> Option<u32> {
        let id = self.stream_id;
        let count = u32::from_be_bytes([0, id[5], id[6], id[7]]);
        (count != 0).then_some(count)
    }

    /// Reads a stored header. An unknown version or flag, a part number above 10000 or a
    /// payload longer than a segment is [`EncryptError::Malformed`]; whether the header fits
    /// its place in the stream is checked by the reader and by authentication.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, EncryptError> {
        if bytes[0] != VERSION {
            return Err(EncryptError::Malformed("unknown segment format version"));
        }
        if bytes[1] & !FLAG_FINAL != 0 {
            return Err(EncryptError::Malformed("unknown segment flags"));
        }
        let part = u16::from_be_bytes([bytes[2], bytes[3]]);
        if part > MAX_PART {
            return Err(EncryptError::Malformed("part number out of range"));
        }
        let payload_len = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if payload_len as usize > SEGMENT_SIZE {
            return Err(EncryptError::Malformed(
                "segment payload longer than a segment",
            ));
        }
        let mut stream_id = [0u8; 8];
        stream_id.copy_from_slice(&bytes[8..16]);
        Ok(Self {
            final_segment: bytes[1] & FLAG_FINAL != 0,
            part,
            payload_len,
            stream_id,
        })
    }
}

/// An object's 256-bit data encryption key (DEK): random per object, wrapped by a
/// key-encryption key for storage. Zeroized on drop; `Debug` never shows the bytes.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    /// A key from its 32 bytes (as unwrapped by a KEK provider).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key from the system's CSPRNG.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, which aws-lc treats as fatal
    /// too: no key is better than a predictable one.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator failed");
        Self(bytes)
    }

    /// The key's bytes, to wrap it.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// The AES-256-GCM key of one stream, `K_p = HKDF-SHA256(DEK, info = "s3-tower/v1" ||
/// be16(part))` (empty salt, RFC 5869's default), so that parts never share a key and a
/// segment of one part cannot be read as another's.
pub struct StreamKey {
    key: LessSafeKey,
    part: u16,
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamKey")
            .field("part", &self.part)
            .finish_non_exhaustive()
    }
}

/// HKDF output length marker for a 32-byte AES key.
struct Aes256Len;

impl aws_lc_rs::hkdf::KeyType for Aes256Len {
    fn len(&self) -> usize {
        32
    }
}

impl StreamKey {
    /// Derives the key of stream `part` (0 for a single PUT) from the object's data key.
    ///
    /// # Panics
    ///
    /// Never in practice: HKDF-SHA256 can always expand 32 bytes and AES-256 accepts any 32
    /// bytes.
    pub fn derive(dek: &DataKey, part: u16) -> Self {
        let info_part = part.to_be_bytes();
        let info: [&[u8]; 2] = [KDF_INFO, &info_part];
        let prk = Salt::new(HKDF_SHA256, &[]).extract(dek.as_bytes());
        let okm = prk
            .expand(&info, Aes256Len)
            .expect("HKDF-SHA256 expands 32 bytes");
        let mut raw = [0u8; 32];
        okm.fill(&mut raw).expect("HKDF-SHA256 fills 32 bytes");
        let unbound = UnboundKey::new(&AES_256_GCM, &raw).expect("AES-256 takes a 32-byte key");
        raw.zeroize();
        Self {
            key: LessSafeKey::new(unbound),
            part,
        }
    }

    /// The part number this key belongs to.
    pub fn part(&self) -> u16 {
        self.part
    }

    /// Seals one segment in place. On entry `segment` holds [`HEADER_LEN`] bytes of any value
    /// followed by the plaintext payload; on return it holds the stored segment
    /// `header || ciphertext || tag`. The header is built from `final_segment`, this key's
    /// part, the payload length and `stream_id`; the nonce is `stream_id || be32(index)`.
    ///
    /// Errors with [`EncryptError::Malformed`] if the payload is longer than a segment, or if
    /// a non-final payload is not exactly one segment (the reader would refuse it).
    ///
    /// Not part of the supported API (hidden): the caller chooses the nonce, and reusing a
    /// stream id with one key is fatal to GCM. [`crate::EncryptBody::new`] is the way to
    /// encrypt; this exists for known-answer tests.
    #[doc(hidden)]
    pub fn seal_in_place(
        &self,
        stream_id: [u8; 8],
        index: u32,
        final_segment: bool,
        segment: &mut BytesMut,
    ) -> Result<(), EncryptError> {
        let payload_len = segment
            .len()
            .checked_sub(HEADER_LEN)
            .ok_or(EncryptError::Malformed(
                "segment buffer shorter than a header",
            ))?;
        if payload_len > SEGMENT_SIZE || (!final_segment && payload_len != SEGMENT_SIZE) {
            return Err(EncryptError::Malformed(
                "segment payload of the wrong length",
            ));
        }
        let header = Header {
            final_segment,
            part: self.part,
            payload_len: u32::try_from(payload_len).unwrap_or(u32::MAX),
            stream_id,
        }
        .to_bytes();
        segment[..HEADER_LEN].copy_from_slice(&header);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(stream_id, index),
                Aad::from(&header),
                &mut segment[HEADER_LEN..],
            )
            .map_err(|_| EncryptError::Malformed("segment too long to seal"))?;
        segment.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Seals one segment of `payload` into a new buffer: `header || ciphertext || tag`.
    /// Hidden for the same reason as [`StreamKey::seal_in_place`].
    #[doc(hidden)]
    pub fn seal(
        &self,
        stream_id: [u8; 8],
        index: u32,
        final_segment: bool,
        payload: &[u8],
    ) -> Result<BytesMut, EncryptError> {
        let mut segment = BytesMut::with_capacity(payload.len() + OVERHEAD);
        self.seal_into(stream_id, index, final_segment, payload, &mut segment)?;
        Ok(segment)
    }

    /// Seals one segment of `payload` and appends the stored segment
    /// (`header || ciphertext || tag`) to `out`, reading the plaintext where it is: no copy
    /// of it is made (the streaming encryptor's path for whole segments inside one frame).
    /// Same checks and nonce as [`StreamKey::seal_in_place`].
    pub(crate) fn seal_into(
        &self,
        stream_id: [u8; 8],
        index: u32,
        final_segment: bool,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), EncryptError> {
        if payload.len() > SEGMENT_SIZE || (!final_segment && payload.len() != SEGMENT_SIZE) {
            return Err(EncryptError::Malformed(
                "segment payload of the wrong length",
            ));
        }
        let header = Header {
            final_segment,
            part: self.part,
            payload_len: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            stream_id,
        }
        .to_bytes();
        let start = out.len();
        out.extend_from_slice(&header);
        out.resize(start + OVERHEAD + payload.len(), 0);
        let (ciphertext, tag) = out[start + HEADER_LEN..].split_at_mut(payload.len());
        let sealed = self.key.seal_out_of_place_scatter(
            nonce(stream_id, index),
            Aad::from(&header),
            payload,
            ciphertext,
            &[],
            tag,
        );
        if sealed.is_err() {
            out.truncate(start);
            return Err(EncryptError::Malformed("segment too long to seal"));
        }
        Ok(())
    }

    /// Opens one whole stored segment in place and returns its header; on success the
    /// plaintext is `segment[HEADER_LEN..HEADER_LEN + payload_len]`.
    ///
    /// Checks, in order: the header parses ([`EncryptError::Malformed`]); the segment is
    /// exactly as long as its header says (`Malformed`); the header names this key's part
    /// ([`EncryptError::Tampered`]: a segment of another part); then authenticates with the
    /// nonce `header.stream_id || be32(index)` (`Tampered`). Whether the stream id and the
    /// FINAL flag fit the stream is the caller's check.
    pub fn open_in_place(&self, index: u32, segment: &mut [u8]) -> Result<Header, EncryptError> {
        let header_bytes: [u8; HEADER_LEN] = segment
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(EncryptError::Malformed("segment shorter than its header"))?;
        let header = Header::parse(&header_bytes)?;
        if segment.len() != header.payload_len as usize + OVERHEAD {
            return Err(EncryptError::Malformed(
                "segment length does not match its header",
            ));
        }
        if header.part != self.part {
            return Err(EncryptError::Tampered);
        }
        self.key
            .open_in_place(
                nonce(header.stream_id, index),
                Aad::from(&header_bytes),
                &mut segment[HEADER_LEN..],
            )
            .map_err(|_| EncryptError::Tampered)?;
        Ok(header)
    }
}

/// The nonce of segment `index` of stream `stream_id`.
fn nonce(stream_id: [u8; 8], index: u32) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[..8].copy_from_slice(&stream_id);
    n[8..].copy_from_slice(&index.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// The largest segment count a stream id records (24 bits); longer streams record 0.
const MAX_STREAM_SEGMENTS: u64 = 0xff_ffff;

/// A fresh stream id: 5 random bytes, then the stream's segment count for a plaintext of
/// `plaintext_len` bytes (0 if unknown or beyond 24 bits).
///
/// # Panics
///
/// If the system random number generator fails (see [`DataKey::generate`]).
pub(crate) fn new_stream_id(plaintext_len: Option<u64>) -> [u8; 8] {
    let mut id = [0u8; 8];
    aws_lc_rs::rand::fill(&mut id[..5]).expect("the system random number generator failed");
    let count = plaintext_len
        .map(segment_count)
        .filter(|&n| n <= MAX_STREAM_SEGMENTS)
        .unwrap_or(0);
    id[5..].copy_from_slice(&count.to_be_bytes()[5..]);
    id
}

/// The number of segments a plaintext of `plain` bytes is stored in: `max(1, ceil(P / S))`.
pub fn segment_count(plain: u64) -> u64 {
    plain.div_ceil(S).max(1)
}

/// The largest object S3 stores (5 TiB): sizes beyond it are refused before any size math.
pub const MAX_OBJECT_SIZE: u64 = 5 << 40;

/// The stored size of a plaintext of `plain` bytes: `P + 32 · max(1, ceil(P / S))`. Exact for
/// every size up to [`MAX_OBJECT_SIZE`]; beyond, it saturates at `u64::MAX` rather than
/// overflow (a client-announced length reaches it).
pub fn encrypted_size(plain: u64) -> u64 {
    plain.saturating_add(O.saturating_mul(segment_count(plain)))
}

/// The plaintext size of a stored stream of `cipher` bytes: `n = ceil(C / U)`, `P = C - 32n`.
/// Sizes that no plaintext encrypts to (shorter than one empty segment, or a last segment too
/// short for its overhead) are [`EncryptError::InvalidSize`].
pub fn plaintext_size(cipher: u64) -> Result<u64, EncryptError> {
    if cipher < O {
        return Err(EncryptError::InvalidSize(cipher));
    }
    let n = cipher.div_ceil(U);
    let last = cipher - (n - 1) * U;
    // The last segment holds at least the overhead, and at least one byte more unless it is
    // the only segment (an empty FINAL segment only ever stands alone).
    if last < O || (n > 1 && last == O) {
        return Err(EncryptError::InvalidSize(cipher));
    }
    Ok(cipher - O * n)
}

/// The plaintext size of a stored multipart object of `cipher` bytes (its parts' streams one
/// after the other): `n = ceil(C / U)`, `P = C - 32n`, as for a single stream.
///
/// Every part but the last is a whole number of full segments, so only the object's last
/// segment may be short. Unlike [`plaintext_size`] this accepts a last segment of exactly
/// 32 bytes after others: an empty last part (one empty FINAL segment). Sizes shorter than
/// one empty segment, or whose last segment is shorter than the overhead, are
/// [`EncryptError::InvalidSize`]. Every size [`plaintext_size`] accepts, this accepts with
/// the same answer.
pub fn multipart_plaintext_size(cipher: u64) -> Result<u64, EncryptError> {
    if cipher < O {
        return Err(EncryptError::InvalidSize(cipher));
    }
    let n = cipher.div_ceil(U);
    if cipher - (n - 1) * U < O {
        return Err(EncryptError::InvalidSize(cipher));
    }
    Ok(cipher - O * n)
}
