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
    DataKey, ENCRYPTED_SEGMENT_SIZE, HEADER_LEN, Header, MAX_PART, OVERHEAD, SEGMENT_SIZE,
    StreamKey, encrypted_size,
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
    /// upload attempt and a retried part must never reuse a nonce, and records the stream's
    /// segment count when the length is announced (see [`crate::format`]); a hidden
    /// `with_stream_id` exists for known-answer tests only.
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
    /// Encrypts `inner` with `key` (its part is written in every header) under a fresh stream
    /// id: 5 random bytes and the stream's segment count. `plaintext_len` is the announced
    /// length, if known (`Content-Length` or `x-amz-decoded-content-length`); the count is
    /// derived from it, or written as 0 (unknown) without it. Parts of a multipart upload
    /// should always announce their length: a range read of the object needs every part's
    /// count ([`DecryptBody::multipart`]).
    ///
    /// # Panics
    ///
    /// If the system random number generator fails (see [`crate::DataKey::generate`]).
    pub fn new(inner: B, key: StreamKey, plaintext_len: Option<u64>) -> Self {
        let stream_id = crate::format::new_stream_id(plaintext_len);
        Self::with_stream_id(inner, key, stream_id, plaintext_len)
    }

    /// Like [`EncryptBody::new`] with a given stream id, written as is (its last three bytes
    /// are the segment count readers check: 0 = unknown). Never reuse a stream id with the
    /// same key: the nonces would repeat. Not part of the supported API (hidden): for
    /// known-answer tests only.
    #[doc(hidden)]
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

/// Which segments of a stored object a [`DecryptBody`] reads and which plaintext bytes it
/// yields: the whole stream ([`Window::whole`], [`Window::sized`]), the whole of a multipart
/// object ([`Window::multipart_whole`]), or a segment-aligned window of either (made by
/// [`crate::range`] from an HTTP range).
///
/// A window is made for one kind of object: single-stream windows for
/// [`DecryptBody::window`], multipart windows for [`DecryptBody::multipart`]; a body given
/// the other kind fails at its first poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub(crate) first_segment: u32,
    pub(crate) segments: Option<u64>,
    pub(crate) skip: usize,
    pub(crate) len: Option<u64>,
    pub(crate) ends_with_final: bool,
    pub(crate) ends_at_object_end: bool,
    /// Multipart windows only: the object's stored segment count, `ceil(C / U)`.
    pub(crate) total_segments: Option<u64>,
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
            total_segments: None,
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
            total_segments: None,
        }
    }

    /// The whole of a multipart object of `stored_size` bytes (the backend's size), for
    /// [`DecryptBody::multipart`]: every part from part 1, in order, up to the last part's
    /// FINAL segment at the object's end, with an exact size hint.
    ///
    /// Errors with [`EncryptError::InvalidSize`] if no multipart object has that size
    /// ([`crate::format::multipart_plaintext_size`]) or it is beyond
    /// [`crate::MAX_OBJECT_SIZE`].
    pub fn multipart_whole(stored_size: u64) -> Result<Self, EncryptError> {
        let plaintext_size = crate::format::multipart_plaintext_size(stored_size)?;
        if plaintext_size > crate::MAX_OBJECT_SIZE {
            return Err(EncryptError::InvalidSize(stored_size));
        }
        let total = stored_size.div_ceil(ENCRYPTED_SEGMENT_SIZE as u64);
        Ok(Self {
            first_segment: 0,
            segments: Some(total),
            skip: 0,
            len: Some(plaintext_size),
            ends_with_final: true,
            ends_at_object_end: true,
            total_segments: Some(total),
        })
    }

    /// The index of the first segment the inner body starts with (in a multipart window, the
    /// global index among all the object's segments).
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

    /// Whether the last segment read must be the stream's FINAL one (otherwise it must not;
    /// in a multipart window: whether the last segment read is the object's last).
    pub fn ends_with_final(&self) -> bool {
        self.ends_with_final
    }

    /// Whether the window ends at the object's last byte, so that the FINAL segment must end
    /// exactly where the window does.
    pub fn ends_at_object_end(&self) -> bool {
        self.ends_at_object_end
    }

    /// For a multipart window, the object's stored segment count; `None` for a single stream.
    pub fn total_segments(&self) -> Option<u64> {
        self.total_segments
    }
}

pin_project! {
    /// Decrypts a stored segment stream, or a segment-aligned [`Window`] of it, as it streams;
    /// or ([`DecryptBody::multipart`]) a multipart object or a window of it.
    ///
    /// The inner body may split the ciphertext anywhere; at most one stored segment is
    /// buffered. Every segment is verified before any of its plaintext is yielded: the header
    /// (version, flags, the key's part), its length, the same stream id as the window's first
    /// segment, its position (the nonce carries the index: a moved, dropped or duplicated
    /// segment fails authentication), FINAL on the last segment and nowhere else (and where
    /// the stream id's segment count, when known, says the stream ends), full payloads
    /// everywhere else, and no data after the last segment. Any failure is yielded as an
    /// error ([`EncryptError::Malformed`] or [`EncryptError::Tampered`]), never as a clean
    /// short body. Trailers of the inner body are dropped.
    pub struct DecryptBody<B> {
        #[pin]
        inner: B,
        reader: Reader,
        segments_left: Option<u64>,
        skip: usize,
        remaining: Option<u64>,
        ends_with_final: bool,
        ends_at_object_end: bool,
        // The stored segment being assembled.
        buf: BytesMut,
        // Its stored length, once its header is read (else just the header's).
        need: usize,
        pending: Bytes,
        state: State,
    }
}

/// How a [`DecryptBody`] places and authenticates segments.
enum Reader {
    /// One stream, one key.
    Single(Single),
    /// A multipart object: part keys derived as the parts come.
    Multipart(Box<Parts>),
}

/// The single-stream reader's position.
struct Single {
    key: StreamKey,
    index: u32,
    stream_id: Option<[u8; 8]>,
}

/// The multipart reader's position.
struct Parts {
    /// The object's data key, to derive each part's key (zeroized on drop).
    dek: DataKey,
    /// Whether the first segment has been placed in its part.
    located: bool,
    /// The current part and its key (derived when its first segment comes).
    part: u16,
    key: Option<StreamKey>,
    stream_id: Option<[u8; 8]>,
    /// The next segment's index in its part and among all the object's segments.
    index: u32,
    global: u64,
    /// The global index of the current part's first segment.
    part_start: u64,
    /// The object's stored segment count.
    total: u64,
    /// The segment count of every part but the last, once one is seen.
    uniform: Option<u64>,
}

const NON_UNIFORM: EncryptError = EncryptError::Malformed("the parts are not all the same size");
const COUNT_MISMATCH: EncryptError =
    EncryptError::Malformed("a segment does not fit its stream's segment count");

impl<B> DecryptBody<B> {
    /// Decrypts the whole stream in `inner` with `key`.
    pub fn new(inner: B, key: StreamKey) -> Self {
        Self::window(inner, key, Window::whole())
    }

    /// Decrypts `window` of a stream; `inner` starts at the window's first segment. A
    /// multipart window fails at the first poll (see [`DecryptBody::multipart`]).
    pub fn window(inner: B, key: StreamKey, window: Window) -> Self {
        let reader = Reader::Single(Single {
            key,
            index: window.first_segment,
            stream_id: None,
        });
        let mut body = Self::with_reader(inner, reader, window);
        if window.total_segments.is_some() {
            body.state = State::Failed(EncryptError::Malformed(
                "a multipart window given to a single-stream reader",
            ));
        }
        body
    }

    /// Decrypts `window` of a multipart object (from [`Window::multipart_whole`] or a
    /// [`crate::RangePlan`] of [`crate::Layout::Multipart`]) with the object's data key;
    /// `inner` starts at the window's first segment. A single-stream window fails at the
    /// first poll.
    ///
    /// Part `p`'s key is derived from `dek` when its first segment comes. The parts must be
    /// 1, 2, … in order, each starting at index 0 and ending with its FINAL segment; every
    /// part but the last a whole number of full segments, all of the same count; the last
    /// part's FINAL segment ends the object.
    ///
    /// A window that starts inside the object does not know which part its first segment
    /// belongs to: the segment's header names the part `p` and (in its stream id) the part's
    /// segment count `c`, which leaves two places it can be, a non-last part at `(p-1)·c` or
    /// the last part at `total - c`; the one whose tag verifies is it. Neither verifying is
    /// [`EncryptError::Tampered`]; a part written without a count (its length unknown at
    /// upload) cannot be placed: [`EncryptError::Malformed`].
    pub fn multipart(inner: B, dek: &DataKey, window: Window) -> Self {
        let reader = Reader::Multipart(Box::new(Parts {
            dek: dek.clone(),
            located: false,
            part: 0,
            key: None,
            stream_id: None,
            index: 0,
            global: u64::from(window.first_segment),
            part_start: 0,
            total: window.total_segments.unwrap_or(0),
            uniform: None,
        }));
        let mut body = Self::with_reader(inner, reader, window);
        if window.total_segments.is_none() {
            body.state = State::Failed(EncryptError::Malformed(
                "a single-stream window given to a multipart reader",
            ));
        }
        body
    }

    fn with_reader(inner: B, reader: Reader, window: Window) -> Self {
        Self {
            inner,
            reader,
            segments_left: window.segments,
            skip: window.skip,
            remaining: window.len,
            ends_with_final: window.ends_with_final,
            ends_at_object_end: window.ends_at_object_end,
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
            let mut segment = this.buf.split();
            let last_of_window = *this.segments_left == Some(1);
            let opened = match this.reader {
                Reader::Single(single) => single.open(
                    &mut segment,
                    this.segments_left.is_some(),
                    last_of_window,
                    *this.ends_with_final,
                ),
                Reader::Multipart(parts) => parts.open(&mut segment, last_of_window),
            };
            let trimmed = opened.and_then(|(payload_len, last)| {
                trim(
                    segment,
                    payload_len,
                    last,
                    this.segments_left,
                    this.skip,
                    this.remaining,
                    *this.ends_with_final && *this.ends_at_object_end,
                )
            });
            match trimmed {
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

/// Checks an authenticated segment against the count its stream id records (if any): FINAL
/// exactly at index `count - 1`.
fn check_count(header: &Header, index: u32) -> Result<(), EncryptError> {
    if let Some(count) = header.stream_segments() {
        let fits = if header.final_segment {
            index.checked_add(1) == Some(count)
        } else {
            index.checked_add(1).is_some_and(|next| next < count)
        };
        if !fits {
            return Err(COUNT_MISMATCH);
        }
    }
    Ok(())
}

impl Single {
    /// Authenticates the whole stored segment in `segment` (decrypting it in place) and checks
    /// its place; returns its payload length and whether it is the last of the window.
    fn open(
        &mut self,
        segment: &mut BytesMut,
        windowed: bool,
        last_of_window: bool,
        ends_with_final: bool,
    ) -> Result<(usize, bool), EncryptError> {
        let header = self.key.open_in_place(self.index, segment)?;
        match self.stream_id {
            Some(id) if id != header.stream_id => return Err(EncryptError::Tampered),
            Some(_) => {}
            None => self.stream_id = Some(header.stream_id),
        }
        let payload_len = header.payload_len as usize;
        if header.final_segment {
            if windowed && !(last_of_window && ends_with_final) {
                return Err(EncryptError::Malformed("a final segment before the end"));
            }
            if payload_len == 0 && self.index != 0 {
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
        check_count(&header, self.index)?;
        self.index = self
            .index
            .checked_add(1)
            .ok_or(EncryptError::Malformed("the object has too many segments"))?;
        Ok((payload_len, header.final_segment || last_of_window))
    }
}

impl Parts {
    /// Authenticates the whole stored segment in `segment` (decrypting it in place) and checks
    /// its place in its part and in the object; returns its payload length and whether it is
    /// the last of the window.
    fn open(
        &mut self,
        segment: &mut BytesMut,
        last_of_window: bool,
    ) -> Result<(usize, bool), EncryptError> {
        let header = if self.located {
            let part = self.part;
            let dek = &self.dek;
            self.key
                .get_or_insert_with(|| StreamKey::derive(dek, part))
                .open_in_place(self.index, segment)?
        } else {
            self.locate(segment)?
        };
        let first_of_part = match self.stream_id {
            Some(id) if id != header.stream_id => return Err(EncryptError::Tampered),
            Some(_) => false,
            None => {
                self.stream_id = Some(header.stream_id);
                true
            }
        };
        let index = self.index;
        let global = self.global;
        if first_of_part && let Some(count) = header.stream_segments() {
            let end = self.part_start + u64::from(count);
            if end > self.total {
                return Err(EncryptError::Malformed(
                    "a part runs past the end of the object",
                ));
            }
            if end < self.total {
                self.uniform_part(u64::from(count))?;
            }
        }
        check_count(&header, index)?;
        let object_last = global + 1 == self.total;
        let payload_len = header.payload_len as usize;
        if header.final_segment {
            if payload_len == 0 && index != 0 {
                return Err(EncryptError::Malformed("an empty final segment after data"));
            }
            if object_last {
                if !last_of_window {
                    return Err(EncryptError::Malformed("a final segment before the end"));
                }
            } else {
                if payload_len != SEGMENT_SIZE {
                    return Err(EncryptError::Malformed(
                        "a part that is not the last is not whole segments",
                    ));
                }
                self.uniform_part(u64::from(index) + 1)?;
                // The next segment starts the next part, at index 0.
                self.part = self
                    .part
                    .checked_add(1)
                    .filter(|&p| p <= MAX_PART)
                    .ok_or(EncryptError::Malformed("too many parts"))?;
                self.key = None;
                self.stream_id = None;
                self.index = 0;
                self.part_start = global + 1;
            }
        } else {
            if payload_len != SEGMENT_SIZE {
                return Err(EncryptError::Malformed("a short segment that is not final"));
            }
            if object_last {
                return Err(EncryptError::Malformed(
                    "the stream ends without a final segment",
                ));
            }
            self.index = index
                .checked_add(1)
                .ok_or(EncryptError::Malformed("the object has too many segments"))?;
        }
        self.global = global + 1;
        Ok((payload_len, object_last || last_of_window))
    }

    /// Records or checks the segment count of a part that is not the last.
    fn uniform_part(&mut self, count: u64) -> Result<(), EncryptError> {
        match self.uniform {
            Some(m) if m != count => Err(NON_UNIFORM),
            Some(_) => Ok(()),
            None => {
                self.uniform = Some(count);
                Ok(())
            }
        }
    }

    /// Places and authenticates the window's first segment: part 1 index 0 at the object's
    /// start; elsewhere, from its header's part and segment count (see
    /// [`DecryptBody::multipart`]).
    fn locate(&mut self, segment: &mut BytesMut) -> Result<Header, EncryptError> {
        let global = self.global;
        if global == 0 {
            let key = StreamKey::derive(&self.dek, 1);
            let header = key.open_in_place(0, segment)?;
            self.enter(1, key, 0, 0);
            return Ok(header);
        }
        let header_bytes: [u8; HEADER_LEN] = segment
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or(EncryptError::Malformed("segment shorter than its header"))?;
        let header = Header::parse(&header_bytes)?;
        let part = header.part;
        if part == 0 {
            // A single-stream segment cannot be part of a multipart object.
            return Err(EncryptError::Tampered);
        }
        let count = u64::from(header.stream_segments().ok_or(EncryptError::Malformed(
            "the part's segment count is unknown",
        ))?);
        // (a) a part that is not the last, at (part - 1) · count.
        let non_last = (u64::from(part) - 1)
            .checked_mul(count)
            .filter(|&start| start <= global && global - start < count)
            .filter(|&start| start + count <= self.total)
            .map(|start| global - start);
        // (b) the last part, at total - count.
        let last = self
            .total
            .checked_sub(count)
            .filter(|&start| start <= global)
            .map(|start| global - start)
            .filter(|&i| Some(i) != non_last);
        let key = StreamKey::derive(&self.dek, part);
        let as_index = |i: u64| u32::try_from(i).map_err(|_| EncryptError::Tampered);
        let index = match (non_last, last) {
            (None, None) => return Err(EncryptError::Tampered),
            (Some(i), None) | (None, Some(i)) => {
                key.open_in_place(as_index(i)?, segment)?;
                i
            }
            (Some(i), Some(j)) => {
                // A failed open leaves the buffer unspecified: try the first on a copy.
                let mut trial = segment.clone();
                match key.open_in_place(as_index(i)?, &mut trial) {
                    Ok(_) => {
                        *segment = trial;
                        i
                    }
                    Err(EncryptError::Tampered) => {
                        drop(trial);
                        key.open_in_place(as_index(j)?, segment)?;
                        j
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        self.enter(part, key, as_index(index)?, global - index);
        Ok(header)
    }

    fn enter(&mut self, part: u16, key: StreamKey, index: u32, part_start: u64) {
        self.located = true;
        self.part = part;
        self.key = Some(key);
        self.index = index;
        self.part_start = part_start;
    }
}

/// Takes the plaintext to yield from an authenticated segment (skipping and trimming to the
/// window) and checks the window's length; returns it and whether the window is done.
fn trim(
    segment: BytesMut,
    payload_len: usize,
    last: bool,
    segments_left: &mut Option<u64>,
    skip: &mut usize,
    remaining: &mut Option<u64>,
    exact_end: bool,
) -> Result<(Bytes, bool), EncryptError> {
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
