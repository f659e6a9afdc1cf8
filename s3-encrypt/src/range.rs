//! Range reads of encrypted objects (§8a): an HTTP `Range` on the plaintext becomes one
//! backend range of whole segments, a [`Window`] for [`crate::DecryptBody`] that skips and
//! trims inside them, and the plaintext `Content-Range` to answer with.
//!
//! The `Range` grammar is parsed here rather than with a crate: S3 serves a single
//! `bytes=` range, and the exact rules (one range only, a suffix longer than the object is
//! the whole object, a start at or beyond the end is unsatisfiable) are a few lines that are
//! easier to check here than to adapt from a general multi-range parser.

use crate::EncryptError;
use crate::body::Window;
use crate::format::{
    ENCRYPTED_SEGMENT_SIZE, MAX_OBJECT_SIZE, SEGMENT_SIZE, encrypted_size,
    multipart_plaintext_size, segment_count,
};

const S: u64 = SEGMENT_SIZE as u64;
const U: u64 = ENCRYPTED_SEGMENT_SIZE as u64;

/// One byte range of an HTTP `Range: bytes=...` header, as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` (both inclusive; `last` may be beyond the end).
    FromTo(u64, u64),
    /// `bytes=first-`: from `first` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value. `Ok(None)` is a value that is not one valid `bytes=`
    /// range (another unit, `first > last`, not a number): as RFC 9110 §14.2 allows and S3
    /// does, the caller ignores the header and answers the whole object. Several ranges
    /// (`bytes=0-1,5-6`) are [`EncryptError::UnsupportedRange`]: S3 does not serve them and
    /// answering the whole object instead would surprise a client that asked for parts.
    pub fn parse(value: &str) -> Result<Option<Self>, EncryptError> {
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return Ok(None);
        };
        if spec.contains(',') {
            return Err(EncryptError::UnsupportedRange(
                "multiple ranges in one request are not supported on encrypted objects",
            ));
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return Ok(None);
        };
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        Ok(match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, true) => None,
            (true, false) => number(last).map(Self::Suffix),
            (false, true) => number(first).map(Self::From),
            (false, false) => match (number(first), number(last)) {
                (Some(a), Some(b)) if a <= b => Some(Self::FromTo(a, b)),
                _ => None,
            },
        })
    }

    /// The inclusive plaintext range this selects in an object of `size` bytes, or
    /// [`EncryptError::InvalidRange`] when it selects nothing (a start at or beyond the end,
    /// a zero-length suffix, any range of an empty object).
    pub fn resolve(self, size: u64) -> Result<(u64, u64), EncryptError> {
        if size == 0 {
            return Err(EncryptError::InvalidRange);
        }
        match self {
            Self::FromTo(a, b) if a < size => Ok((a, b.min(size - 1))),
            Self::From(a) if a < size => Ok((a, size - 1)),
            Self::Suffix(n) if n > 0 => Ok((size - n.min(size), size - 1)),
            _ => Err(EncryptError::InvalidRange),
        }
    }
}

/// How an object's plaintext is laid out in stored streams: one stream (a single PUT) or the
/// part streams of a multipart upload one after the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// One stream (part 0) holding the whole plaintext.
    SingleStream {
        /// The plaintext size.
        plaintext_size: u64,
    },
    /// A multipart upload: the streams of parts 1, 2, … in order, every part but the last the
    /// same whole number of segments, so that segment `g` is at stored offset `g · U` and
    /// plaintext offset `g · S` as in one stream. Read with [`crate::DecryptBody::multipart`].
    Multipart {
        /// The plaintext size, [`crate::format::multipart_plaintext_size`] of `stored_size`.
        plaintext_size: u64,
        /// The stored (backend) size. Needed besides the plaintext size: an empty last part
        /// is one 32-byte segment, so the plaintext size alone does not tell how many
        /// segments the object has.
        stored_size: u64,
    },
}

/// What a ranged GET of an encrypted object does: which stored bytes to fetch, how to decrypt
/// them and what to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePlan {
    first: u64,
    last: u64,
    object_size: u64,
    backend_first: u64,
    backend_last: u64,
    part: u16,
    window: Window,
}

impl RangePlan {
    /// Plans `range` on an object laid out as `layout`.
    pub fn new(layout: Layout, range: ByteRange) -> Result<Self, EncryptError> {
        match layout {
            Layout::SingleStream { plaintext_size } => {
                // A size no object can have (from a backend or stored metadata): not a range
                // error.
                if plaintext_size > MAX_OBJECT_SIZE {
                    return Err(EncryptError::InvalidSize(plaintext_size));
                }
                let (first, last) = range.resolve(plaintext_size)?;
                Self::plan(
                    plaintext_size,
                    encrypted_size(plaintext_size),
                    false,
                    first,
                    last,
                )
            }
            Layout::Multipart {
                plaintext_size,
                stored_size,
            } => {
                if plaintext_size > MAX_OBJECT_SIZE
                    || multipart_plaintext_size(stored_size) != Ok(plaintext_size)
                {
                    return Err(EncryptError::InvalidSize(stored_size));
                }
                let (first, last) = range.resolve(plaintext_size)?;
                Self::plan(plaintext_size, stored_size, true, first, last)
            }
        }
    }

    /// The plan for the inclusive plaintext range `first..=last` (`first <= last < size`) of
    /// an object of `size` plaintext bytes stored in `stored` bytes (both already checked).
    fn plan(
        size: u64,
        stored: u64,
        multipart: bool,
        first: u64,
        last: u64,
    ) -> Result<Self, EncryptError> {
        let first_seg = first / S;
        let last_seg = last / S;
        // The stored segment count: for a multipart object with an empty last part one more
        // than the plaintext needs.
        let n = if multipart {
            stored.div_ceil(U)
        } else {
            segment_count(size)
        };
        let window = Window {
            first_segment: u32::try_from(first_seg).map_err(|_| EncryptError::InvalidRange)?,
            segments: Some(last_seg - first_seg + 1),
            skip: usize::try_from(first - first_seg * S).map_err(|_| EncryptError::InvalidRange)?,
            len: Some(last - first + 1),
            ends_with_final: last_seg + 1 == n,
            ends_at_object_end: last + 1 == size,
            total_segments: multipart.then_some(n),
        };
        Ok(Self {
            first,
            last,
            object_size: size,
            backend_first: first_seg * U,
            backend_last: ((last_seg + 1) * U).min(stored) - 1,
            part: 0,
            window,
        })
    }

    /// The first plaintext byte answered.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The last plaintext byte answered (inclusive).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The number of plaintext bytes answered (the response's `Content-Length`).
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Always false: a plan answers at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The plaintext object size.
    pub fn object_size(&self) -> u64 {
        self.object_size
    }

    /// The response's `Content-Range` value: `bytes first-last/size`.
    pub fn content_range(&self) -> String {
        format!("bytes {}-{}/{}", self.first, self.last, self.object_size)
    }

    /// The stored bytes to fetch, inclusive: whole segments.
    pub fn backend_range(&self) -> (u64, u64) {
        (self.backend_first, self.backend_last)
    }

    /// The `Range` header value for the backend request: `bytes=x-y`.
    pub fn backend_range_header(&self) -> String {
        format!("bytes={}-{}", self.backend_first, self.backend_last)
    }

    /// The part whose stream key decrypts the fetched bytes: 0 for a single PUT. Also 0 for
    /// a [`Layout::Multipart`] plan, where it means nothing: the fetched segments may span
    /// parts, and [`crate::DecryptBody::multipart`] finds them from the data key and the
    /// segments themselves.
    pub fn part(&self) -> u16 {
        self.part
    }

    /// The window to give [`crate::DecryptBody::window`] (single stream) or
    /// [`crate::DecryptBody::multipart`] (multipart) over the fetched bytes.
    pub fn window(&self) -> Window {
        self.window
    }
}
