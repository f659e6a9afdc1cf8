//! Streaming body adapters: [`EncryptBody`] turns a plaintext body into the v1 segment stream
//! (§8a) and [`DecryptBody`] turns a segment stream (or a segment-aligned window of one) back
//! into plaintext, both in constant memory: at most one segment is buffered, whatever the
//! object size and however the inner body splits its frames.
//!
//! Both fail rather than end early: any error (from the inner body, a length mismatch, a
//! segment that does not verify) is yielded as a body error, and the body never reports a
//! clean end after it, so the server or client carrying it aborts the connection instead of
//! delivering a short object.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::EncryptError;
use crate::format::{
    ENCRYPTED_SEGMENT_SIZE, HEADER_LEN, Header, OVERHEAD, SEGMENT_SIZE, StreamKey, encrypted_size,
};

/// The error type of both bodies: an inner body's error passed through as it was (boxed), or
/// an [`EncryptError`] (downcast to tell them apart).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a body adapter is.
#[derive(Debug)]
enum State {
    /// Reading the inner body.
    Running,
    /// (Decrypt only) every needed segment is out; the inner body must end without data.
    Draining,
    /// Ended cleanly.
    Done,
    /// Failed; every further poll fails again with this error.
    Failed(EncryptError),
}

/// The error a body yields when polled again after it failed.
const AFTER_FAILURE: EncryptError = EncryptError::Malformed("the body already failed");

pin_project! {
    /// Encrypts a plaintext body into the v1 segment stream while it streams.
    ///
    /// Buffers at most one segment of plaintext (plus the inner body's current frame) and
    /// yields one frame per stored segment. The stream id is generated inside
    /// ([`EncryptBody::new`]), fresh and random for every body, because every body is one
    /// upload attempt and a retried part must never reuse a nonce;
    /// [`EncryptBody::with_stream_id`] exists for known-answer tests.
    ///
    /// With an announced plaintext length the size hint is exact (the stored size) and a
    /// body shorter or longer than announced fails with [`EncryptError::LengthMismatch`]
    /// instead of ending: the FINAL segment is only released once the inner body has ended
    /// with the right length. Trailers of the inner body are dropped (their checksums are
    /// of the plaintext; the caller verifies them).
    pub struct EncryptBody<B> {
        #[pin]
        inner: B,
        key: StreamKey,
        stream_id: [u8; 8],
        index: u32,
        // The segment being filled: a header slot, then plaintext.
        buf: BytesMut,
        // What is left of the inner body's current frame.
        pending: Bytes,
        expected: Option<u64>,
        read: u64,
        emitted: u64,
        inner_done: bool,
        state: State,
    }
}

impl<B> EncryptBody<B> {
    /// Encrypts `inner` with `key` (its part is written in every header) under a fresh random
    /// stream id. `plaintext_len` is the announced length, if known (`Content-Length` or
    /// `x-amz-decoded-content-length`).
    ///
    /// # Panics
    ///
    /// If the system random number generator fails (see [`crate::DataKey::generate`]).
    pub fn new(inner: B, key: StreamKey, plaintext_len: Option<u64>) -> Self {
        let mut stream_id = [0u8; 8];
        aws_lc_rs::rand::fill(&mut stream_id).expect("the system random number generator failed");
        Self::with_stream_id(inner, key, stream_id, plaintext_len)
    }

    /// Like [`EncryptBody::new`] with a given stream id. Never reuse a stream id with the same
    /// key: the nonces would repeat. For tests and known-answer vectors.
    pub fn with_stream_id(
        inner: B,
        key: StreamKey,
        stream_id: [u8; 8],
        plaintext_len: Option<u64>,
    ) -> Self {
        Self {
            inner,
            key,
            stream_id,
            index: 0,
            buf: new_segment_buf(),
            pending: Bytes::new(),
            expected: plaintext_len,
            read: 0,
            emitted: 0,
            inner_done: false,
            state: State::Running,
        }
    }

    /// The stream id written in every header of this body.
    pub fn stream_id(&self) -> [u8; 8] {
        self.stream_id
    }
}

/// An empty segment buffer: room for one stored segment, the header slot already there.
fn new_segment_buf() -> BytesMut {
    let mut buf = BytesMut::with_capacity(ENCRYPTED_SEGMENT_SIZE);
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    buf
}

const FULL: usize = HEADER_LEN + SEGMENT_SIZE;

impl<B> Body for EncryptBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Failed(e) => return Poll::Ready(Some(Err(Box::new(e.clone())))),
                State::Running | State::Draining => {}
            }
            if this.buf.is_empty() {
                this.buf.reserve(ENCRYPTED_SEGMENT_SIZE);
                this.buf.extend_from_slice(&[0u8; HEADER_LEN]);
            }
            let full = this.buf.len() == FULL;
            // A full segment with more plaintext known to follow is not the last one.
            let more_follows =
                !this.pending.is_empty() || this.expected.is_some_and(|e| *this.read < e);
            if full && more_follows {
                return Poll::Ready(Some(seal(
                    this.key,
                    *this.stream_id,
                    this.index,
                    this.buf,
                    this.emitted,
                    false,
                    this.state,
                )));
            }
            // A whole segment inside the current frame, known not to be the last: sealed
            // straight from the frame, without copying it into the segment buffer first.
            if this.buf.len() == HEADER_LEN
                && this.pending.len() >= SEGMENT_SIZE
                && (this.pending.len() > SEGMENT_SIZE
                    || this.expected.is_some_and(|e| *this.read < e))
            {
                let payload = this.pending.split_to(SEGMENT_SIZE);
                this.buf.clear();
                let sealed =
                    this.key
                        .seal_into(*this.stream_id, *this.index, false, &payload, this.buf);
                return Poll::Ready(Some(match sealed {
                    Ok(()) => emit(this.index, this.buf, this.emitted, this.state),
                    Err(e) => Err(fail(this.state, e)),
                }));
            }
            if !this.pending.is_empty() {
                let take = this.pending.len().min(FULL - this.buf.len());
                this.buf.extend_from_slice(&this.pending.split_to(take));
                continue;
            }
            if *this.inner_done {
                if let Some(expected) = *this.expected
                    && *this.read != expected
                {
                    return Poll::Ready(Some(Err(fail(
                        this.state,
                        EncryptError::LengthMismatch {
                            expected,
                            actual: *this.read,
                        },
                    ))));
                }
                let frame = seal(
                    this.key,
                    *this.stream_id,
                    this.index,
                    this.buf,
                    this.emitted,
                    true,
                    this.state,
                );
                if frame.is_ok() {
                    *this.state = State::Done;
                }
                return Poll::Ready(Some(frame));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                None => *this.inner_done = true,
                Some(Err(e)) => {
                    *this.state = State::Failed(AFTER_FAILURE);
                    return Poll::Ready(Some(Err(e.into())));
                }
                Some(Ok(frame)) => {
                    // Trailers are dropped.
                    if let Ok(data) = frame.into_data() {
                        *this.read += data.len() as u64;
                        if let Some(expected) = *this.expected
                            && *this.read > expected
                        {
                            return Poll::Ready(Some(Err(fail(
                                this.state,
                                EncryptError::LengthMismatch {
                                    expected,
                                    actual: *this.read,
                                },
                            ))));
                        }
                        *this.pending = data;
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.state, self.expected) {
            (State::Done, _) => SizeHint::with_exact(0),
            (State::Running, Some(expected)) => {
                SizeHint::with_exact(encrypted_size(expected).saturating_sub(self.emitted))
            }
            _ => SizeHint::default(),
        }
    }
}

/// Seals the segment in `buf` as segment `index`, returns its frame and starts the next.
#[allow(clippy::too_many_arguments)]
fn seal(
    key: &StreamKey,
    stream_id: [u8; 8],
    index: &mut u32,
    buf: &mut BytesMut,
    emitted: &mut u64,
    final_segment: bool,
    state: &mut State,
) -> Result<Frame<Bytes>, BoxError> {
    if let Err(e) = key.seal_in_place(stream_id, *index, final_segment, buf) {
        return Err(fail(state, e));
    }
    emit(index, buf, emitted, state)
}

/// Hands out the stored segment sealed in `buf` and starts the next one.
fn emit(
    index: &mut u32,
    buf: &mut BytesMut,
    emitted: &mut u64,
    state: &mut State,
) -> Result<Frame<Bytes>, BoxError> {
    let Some(next) = index.checked_add(1) else {
        return Err(fail(
            state,
            EncryptError::Malformed("the object has too many segments"),
        ));
    };
    *index = next;
    let out = buf.split().freeze();
    *emitted += out.len() as u64;
    // The next segment's buffer is set up at the next poll, not now: by then the consumer
    // has usually written and dropped this frame, and the allocation is reused in place.
    Ok(Frame::data(out))
}

/// Records the failure and returns the error to yield.
fn fail(state: &mut State, e: EncryptError) -> BoxError {
    *state = State::Failed(e.clone());
    Box::new(e)
}

/// Which segments of a stored stream a [`DecryptBody`] reads and which plaintext bytes it
/// yields: the whole stream ([`Window::whole`]) or a segment-aligned window of it (made by
/// [`crate::range`] from an HTTP range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub(crate) first_segment: u32,
    pub(crate) segments: Option<u64>,
    pub(crate) skip: usize,
    pub(crate) len: Option<u64>,
    pub(crate) ends_with_final: bool,
    pub(crate) ends_at_object_end: bool,
}

impl Window {
    /// The whole stream, from segment 0 up to its FINAL segment, whatever its size.
    pub fn whole() -> Self {
        Self {
            first_segment: 0,
            segments: None,
            skip: 0,
            len: None,
            ends_with_final: true,
            ends_at_object_end: true,
        }
    }

    /// The whole stream of an object whose plaintext size is known (from the stored size,
    /// [`crate::plaintext_size`]): like [`Window::whole`], and also gives an exact size hint
    /// and refuses a stream whose plaintext is not exactly `plaintext_size` bytes.
    pub fn sized(plaintext_size: u64) -> Self {
        Self {
            first_segment: 0,
            segments: Some(crate::format::segment_count(plaintext_size)),
            skip: 0,
            len: Some(plaintext_size),
            ends_with_final: true,
            ends_at_object_end: true,
        }
    }

    /// The index of the first segment the inner body starts with.
    pub fn first_segment(&self) -> u32 {
        self.first_segment
    }

    /// How many segments are read (`None`: up to the FINAL one).
    pub fn segments(&self) -> Option<u64> {
        self.segments
    }

    /// Plaintext bytes skipped at the start of the first segment.
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// Plaintext bytes yielded (`None`: all up to the FINAL segment).
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the window yields nothing.
    pub fn is_empty(&self) -> bool {
        self.len == Some(0)
    }

    /// Whether the last segment read must be the stream's FINAL one (otherwise it must not).
    pub fn ends_with_final(&self) -> bool {
        self.ends_with_final
    }

    /// Whether the window ends at the object's last byte, so that the FINAL segment must end
    /// exactly where the window does.
    pub fn ends_at_object_end(&self) -> bool {
        self.ends_at_object_end
    }
}

pin_project! {
    /// Decrypts a stored segment stream, or a segment-aligned [`Window`] of it, as it streams.
    ///
    /// The inner body may split the ciphertext anywhere; at most one stored segment is
    /// buffered. Every segment is verified before any of its plaintext is yielded: the header
    /// (version, flags, the key's part), its length, the same stream id as the window's first
    /// segment, its position (the nonce carries the index: a moved, dropped or duplicated
    /// segment fails authentication), FINAL on the last segment and nowhere else, full
    /// payloads everywhere else, and no data after the last segment. Any failure is yielded
    /// as an error ([`EncryptError::Malformed`] or [`EncryptError::Tampered`]), never as a
    /// clean short body. Trailers of the inner body are dropped.
    pub struct DecryptBody<B> {
        #[pin]
        inner: B,
        key: StreamKey,
        index: u32,
        segments_left: Option<u64>,
        skip: usize,
        remaining: Option<u64>,
        ends_with_final: bool,
        ends_at_object_end: bool,
        stream_id: Option<[u8; 8]>,
        // The stored segment being assembled.
        buf: BytesMut,
        // Its stored length, once its header is read (else just the header's).
        need: usize,
        pending: Bytes,
        state: State,
    }
}

impl<B> DecryptBody<B> {
    /// Decrypts the whole stream in `inner` with `key`.
    pub fn new(inner: B, key: StreamKey) -> Self {
        Self::window(inner, key, Window::whole())
    }

    /// Decrypts `window` of a stream; `inner` starts at the window's first segment.
    pub fn window(inner: B, key: StreamKey, window: Window) -> Self {
        Self {
            inner,
            key,
            index: window.first_segment,
            segments_left: window.segments,
            skip: window.skip,
            remaining: window.len,
            ends_with_final: window.ends_with_final,
            ends_at_object_end: window.ends_at_object_end,
            stream_id: None,
            buf: BytesMut::with_capacity(ENCRYPTED_SEGMENT_SIZE),
            need: HEADER_LEN,
            pending: Bytes::new(),
            state: State::Running,
        }
    }
}

impl<B> Body for DecryptBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Failed(e) => return Poll::Ready(Some(Err(Box::new(e.clone())))),
                State::Draining => {
                    if !this.pending.is_empty() {
                        return Poll::Ready(Some(Err(fail(
                            this.state,
                            EncryptError::Malformed("data after the last segment"),
                        ))));
                    }
                    match ready!(this.inner.as_mut().poll_frame(cx)) {
                        None => *this.state = State::Done,
                        Some(Err(e)) => {
                            *this.state = State::Failed(AFTER_FAILURE);
                            return Poll::Ready(Some(Err(e.into())));
                        }
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                *this.pending = data;
                            }
                        }
                    }
                    continue;
                }
                State::Running => {}
            }
            if this.buf.len() < *this.need {
                if !this.pending.is_empty() {
                    if this.buf.is_empty() {
                        // Set up lazily (see `emit`): the last segment's allocation is reused
                        // once its plaintext has been consumed.
                        this.buf.reserve(ENCRYPTED_SEGMENT_SIZE);
                    }
                    let take = this.pending.len().min(*this.need - this.buf.len());
                    this.buf.extend_from_slice(&this.pending.split_to(take));
                    continue;
                }
                match ready!(this.inner.as_mut().poll_frame(cx)) {
                    None => {
                        let why = if this.buf.is_empty() {
                            "the stream ends without a final segment"
                        } else {
                            "the stream ends inside a segment"
                        };
                        return Poll::Ready(Some(Err(fail(
                            this.state,
                            EncryptError::Malformed(why),
                        ))));
                    }
                    Some(Err(e)) => {
                        *this.state = State::Failed(AFTER_FAILURE);
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            *this.pending = data;
                        }
                    }
                }
                continue;
            }
            if *this.need == HEADER_LEN {
                // The header is in: learn the segment's stored length.
                let mut bytes = [0u8; HEADER_LEN];
                bytes.copy_from_slice(&this.buf[..HEADER_LEN]);
                match Header::parse(&bytes) {
                    Ok(h) => *this.need = h.payload_len as usize + OVERHEAD,
                    Err(e) => return Poll::Ready(Some(Err(fail(this.state, e)))),
                }
                if this.buf.len() < *this.need {
                    continue;
                }
            }
            match open_segment(
                this.key,
                this.buf,
                this.index,
                this.segments_left,
                this.skip,
                this.remaining,
                *this.ends_with_final && *this.ends_at_object_end,
                *this.ends_with_final,
                this.stream_id,
            ) {
                Err(e) => return Poll::Ready(Some(Err(fail(this.state, e)))),
                Ok((plain, last)) => {
                    *this.need = HEADER_LEN;
                    if last {
                        *this.state = State::Draining;
                    }
                    if !plain.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(plain))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.state, self.remaining) {
            (State::Done | State::Draining, _) => SizeHint::with_exact(0),
            (State::Running, Some(r)) => SizeHint::with_exact(r),
            _ => SizeHint::default(),
        }
    }
}

/// Verifies and decrypts the whole stored segment in `buf`; returns the plaintext to yield and
/// whether it was the last segment of the window.
#[allow(clippy::too_many_arguments)]
fn open_segment(
    key: &StreamKey,
    buf: &mut BytesMut,
    index: &mut u32,
    segments_left: &mut Option<u64>,
    skip: &mut usize,
    remaining: &mut Option<u64>,
    exact_end: bool,
    ends_with_final: bool,
    stream_id: &mut Option<[u8; 8]>,
) -> Result<(Bytes, bool), EncryptError> {
    let mut segment = buf.split();
    let header = key.open_in_place(*index, &mut segment)?;
    match stream_id {
        Some(id) if *id != header.stream_id => return Err(EncryptError::Tampered),
        Some(_) => {}
        None => *stream_id = Some(header.stream_id),
    }
    let last_of_window = *segments_left == Some(1);
    let payload_len = header.payload_len as usize;
    if header.final_segment {
        if segments_left.is_some() && !(last_of_window && ends_with_final) {
            return Err(EncryptError::Malformed("a final segment before the end"));
        }
        if payload_len == 0 && *index != 0 {
            return Err(EncryptError::Malformed("an empty final segment after data"));
        }
    } else {
        if payload_len != SEGMENT_SIZE {
            return Err(EncryptError::Malformed("a short segment that is not final"));
        }
        if last_of_window && ends_with_final {
            return Err(EncryptError::Malformed(
                "the stream ends without a final segment",
            ));
        }
    }
    let last = header.final_segment || last_of_window;
    *index = index
        .checked_add(1)
        .ok_or(EncryptError::Malformed("the object has too many segments"))?;
    if let Some(left) = segments_left {
        *left -= 1;
    }
    if *skip > payload_len {
        return Err(EncryptError::Malformed(
            "the object is shorter than its size",
        ));
    }
    let start = HEADER_LEN + *skip;
    *skip = 0;
    let mut end = HEADER_LEN + payload_len;
    if let Some(r) = remaining {
        let avail = (end - start) as u64;
        let take = avail.min(*r);
        *r -= take;
        end = start + usize::try_from(take).unwrap_or(usize::MAX);
        if last && *r > 0 {
            return Err(EncryptError::Malformed(
                "the object is shorter than its size",
            ));
        }
        if last && exact_end && avail > take {
            return Err(EncryptError::Malformed(
                "the object is longer than its size",
            ));
        }
    }
    let plain = segment.freeze().slice(start..end);
    Ok((plain, last))
}
