//! The streaming bodies and range plans: round trips at every segment boundary and with random
//! frame splits, every way a stored stream can be damaged (each with its exact error), length
//! mismatches on upload, and range reads at every boundary.

#![allow(clippy::unwrap_used, missing_docs)]
// Test data: sizes are small and casts between them exact here.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame};
use proptest::prelude::*;
use s3_encrypt::format::ENCRYPTED_SEGMENT_SIZE;
use s3_encrypt::{
    BoxError, ByteRange, DataKey, DecryptBody, EncryptBody, EncryptError, Layout, MAX_OBJECT_SIZE,
    RangePlan, SEGMENT_SIZE, StreamKey, Window, encrypted_size, plaintext_size,
};

const S: usize = SEGMENT_SIZE;
const U: usize = ENCRYPTED_SEGMENT_SIZE;
// A stream id recording no segment count (its last three bytes 0), so that hand-made streams
// of any length verify; the count check has its own tests.
const SID: [u8; 8] = *b"strea\0\0\0";

/// A body that yields the given frames, then optionally an error.
struct Frames {
    frames: VecDeque<Frame<Bytes>>,
    error: Option<BoxError>,
}

impl Frames {
    fn data(chunks: Vec<Bytes>) -> Self {
        Self {
            frames: chunks.into_iter().map(Frame::data).collect(),
            error: None,
        }
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        Poll::Ready(self.error.take().map(Err))
    }
}

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `data` cut into frames: `seed == 0` one frame, `1` one-byte frames (small inputs), else
/// random lengths up to 1.5 segments.
fn split(data: &[u8], seed: u64) -> Vec<Bytes> {
    let data = Bytes::copy_from_slice(data);
    match seed {
        0 => vec![data],
        1 => (0..data.len()).map(|i| data.slice(i..=i)).collect(),
        _ => {
            let mut rng = Rng(seed);
            let mut out = Vec::new();
            let mut at = 0;
            while at < data.len() {
                let n = ((rng.next() % (S as u64 * 3 / 2)) as usize + 1).min(data.len() - at);
                out.push(data.slice(at..at + n));
                at += n;
            }
            out
        }
    }
}

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Polls `body` to its end (the bodies under test never wait on a ready inner body): the
/// bytes yielded and the first error, if any. After an error it checks the body fails again
/// and does not report an end.
fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
    mut body: B,
) -> (Vec<u8>, Option<BoxError>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => {
                assert!(body.is_end_stream());
                return (out, None);
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(d) = frame.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                assert!(
                    !body.is_end_stream(),
                    "a failed body must not report its end"
                );
                match Pin::new(&mut body).poll_frame(&mut cx) {
                    Poll::Ready(Some(Err(_))) => {}
                    _ => panic!("a failed body must keep failing"),
                }
                return (out, Some(e));
            }
            Poll::Pending => panic!("the inner body is always ready"),
        }
    }
}

fn encrypt_with(data: &[u8], key: StreamKey, sid: [u8; 8], len: Option<u64>, seed: u64) -> Vec<u8> {
    let body = EncryptBody::with_stream_id(Frames::data(split(data, seed)), key, sid, len);
    if let Some(l) = len {
        assert_eq!(body.size_hint().exact(), Some(encrypted_size(l)));
    }
    let (out, err) = drain(body);
    assert!(err.is_none(), "{err:?}");
    out
}

fn encrypt(data: &[u8], dek: &DataKey, seed: u64) -> Vec<u8> {
    encrypt_with(
        data,
        StreamKey::derive(dek, 0),
        SID,
        Some(data.len() as u64),
        seed,
    )
}

fn decrypt(cipher: &[u8], dek: &DataKey, seed: u64) -> Result<Vec<u8>, EncryptError> {
    decrypt_window(cipher, StreamKey::derive(dek, 0), Window::whole(), seed).1
}

/// The bytes yielded before the end or the error, and the outcome.
fn decrypt_window(
    cipher: &[u8],
    key: StreamKey,
    window: Window,
    seed: u64,
) -> (Vec<u8>, Result<Vec<u8>, EncryptError>) {
    let (out, err) = drain(DecryptBody::window(
        Frames::data(split(cipher, seed)),
        key,
        window,
    ));
    match err {
        None => (out.clone(), Ok(out)),
        Some(e) => (
            out,
            Err(*e.downcast::<EncryptError>().expect("an EncryptError")),
        ),
    }
}

fn dek() -> DataKey {
    DataKey::from_bytes([7u8; 32])
}

fn segments(cipher: &[u8]) -> Vec<Vec<u8>> {
    cipher.chunks(U).map(<[u8]>::to_vec).collect()
}

// --- round trips ------------------------------------------------------------------------

const SIZES: [usize; 9] = [0, 1, S - 1, S, S + 1, 2 * S, 3 * S, 3 * S + 1, 4 * S - 17];

#[test]
fn round_trip_at_segment_boundaries() {
    let dek = dek();
    for size in SIZES {
        let data = plaintext(size, size as u64);
        for seed in [0, 2, 3] {
            let cipher = encrypt(&data, &dek, seed);
            assert_eq!(
                cipher.len() as u64,
                encrypted_size(size as u64),
                "size {size}"
            );
            assert_eq!(plaintext_size(cipher.len() as u64), Ok(size as u64));
            for dseed in [0, 5] {
                assert_eq!(decrypt(&cipher, &dek, dseed).unwrap(), data, "size {size}");
            }
        }
    }
}

#[test]
fn round_trip_one_byte_frames() {
    let dek = dek();
    for size in [0, 1, S - 1, S, S + 1] {
        let data = plaintext(size, 9);
        let cipher = encrypt(&data, &dek, 1);
        assert_eq!(decrypt(&cipher, &dek, 1).unwrap(), data);
    }
}

#[test]
fn unknown_length_gives_the_same_layout() {
    // Without an announced length the body must still end with one FINAL segment that
    // carries data (k·S bytes: the k-th full segment is FINAL, no empty one after it).
    let dek = dek();
    for size in SIZES {
        let data = plaintext(size, 4);
        let known = encrypt(&data, &dek, 2);
        let unknown = encrypt_with(&data, StreamKey::derive(&dek, 0), SID, None, 3);
        assert_eq!(known, unknown, "size {size}");
    }
}

#[test]
fn empty_body_is_one_empty_final_segment() {
    let cipher = encrypt(&[], &dek(), 0);
    assert_eq!(cipher.len(), 32);
    assert_eq!(
        &cipher[..16],
        &[
            1, 1, 0, 0, 0, 0, 0, 0, b's', b't', b'r', b'e', b'a', 0, 0, 0
        ]
    );
}

#[test]
fn fresh_stream_id_per_body() {
    let dek = dek();
    let a = EncryptBody::new(Frames::data(vec![]), StreamKey::derive(&dek, 0), Some(0));
    let b = EncryptBody::new(Frames::data(vec![]), StreamKey::derive(&dek, 0), Some(0));
    assert_ne!(a.stream_id(), b.stream_id());
    let id = a.stream_id();
    let (cipher, err) = drain(a);
    assert!(err.is_none());
    assert_eq!(&cipher[8..16], &id);
}

#[test]
fn stream_ids_record_the_segment_count() {
    let key = || StreamKey::derive(&dek(), 0);
    let count = |len: Option<u64>| {
        let id = EncryptBody::new(Frames::data(vec![]), key(), len).stream_id();
        u32::from_be_bytes([0, id[5], id[6], id[7]])
    };
    for (len, want) in [
        (0, 1),
        (1, 1),
        (S as u64, 1),
        (S as u64 + 1, 2),
        (5 << 30, 81_920),
        (0xff_ffff * S as u64, 0xff_ffff),
        // Too many segments for 24 bits: unknown.
        (0x100_0000 * S as u64, 0),
        (u64::MAX, 0),
    ] {
        assert_eq!(count(Some(len)), want, "{len}");
    }
    assert_eq!(count(None), 0);
    // 40 random bits in front.
    let a = EncryptBody::new(Frames::data(vec![]), key(), Some(7)).stream_id();
    let b = EncryptBody::new(Frames::data(vec![]), key(), Some(7)).stream_id();
    assert_ne!(a[..5], b[..5]);
    assert_eq!(a[5..], b[5..]);
    // The stored header carries it, and the stream reads back.
    for size in SIZES {
        let data = plaintext(size, 3);
        let body = EncryptBody::new(Frames::data(split(&data, 2)), key(), Some(size as u64));
        let (cipher, err) = drain(body);
        assert!(err.is_none());
        let header = s3_encrypt::Header::parse(&cipher[..16].try_into().unwrap()).unwrap();
        assert_eq!(
            header.stream_segments(),
            Some(cipher.len().div_ceil(U) as u32)
        );
        assert_eq!(decrypt(&cipher, &dek(), 3).unwrap(), data, "size {size}");
    }
}

#[test]
fn final_segment_where_the_count_says() {
    let key = StreamKey::derive(&dek(), 0);
    let full = plaintext(S, 1);
    let with_count = |n: u8| [b'c', b'o', b'u', b'n', b't', 0, 0, n];
    let mismatch = EncryptError::Malformed("a segment does not fit its stream's segment count");
    // Count 3, FINAL at index 1.
    let sid = with_count(3);
    let c = [
        key.seal(sid, 0, false, &full).unwrap(),
        key.seal(sid, 1, true, &full[..5]).unwrap(),
    ]
    .concat();
    assert_eq!(decrypt_err(&c), mismatch);
    // Count 2, a non-final segment at index 1 (then a FINAL one at 2).
    let sid = with_count(2);
    let c = [
        key.seal(sid, 0, false, &full).unwrap(),
        key.seal(sid, 1, false, &full).unwrap(),
        key.seal(sid, 2, true, &full[..5]).unwrap(),
    ]
    .concat();
    assert_eq!(decrypt_err(&c), mismatch);
    // Count 1 on a lone FINAL segment, and count 2 on a proper 2-segment stream: fine.
    let c = key.seal(with_count(1), 0, true, b"x").unwrap();
    assert_eq!(decrypt(&c, &dek(), 0).unwrap(), b"x");
    let sid = with_count(2);
    let c = [
        key.seal(sid, 0, false, &full).unwrap(),
        key.seal(sid, 1, true, &full[..5]).unwrap(),
    ]
    .concat();
    assert_eq!(decrypt(&c, &dek(), 0).unwrap().len(), S + 5);
    // Checked in windows too: a window of the second segment only.
    let c = [
        key.seal(with_count(3), 0, false, &full).unwrap(),
        key.seal(with_count(3), 1, true, &full[..5]).unwrap(),
    ]
    .concat();
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: S as u64 + 5,
        },
        ByteRange::Suffix(2),
    )
    .unwrap();
    let (_, r) = decrypt_window(&c[U..], StreamKey::derive(&dek(), 0), plan.window(), 0);
    assert_eq!(r, Err(mismatch));
}

#[test]
fn parts_round_trip_with_their_own_key() {
    let dek = dek();
    let data = plaintext(S + 5, 3);
    let cipher = encrypt_with(&data, StreamKey::derive(&dek, 7), SID, None, 2);
    assert_eq!(&cipher[2..4], &[0, 7]);
    let (_, r) = decrypt_window(&cipher, StreamKey::derive(&dek, 7), Window::whole(), 3);
    assert_eq!(r.unwrap(), data);
    // Read as another part: refused.
    let (out, r) = decrypt_window(&cipher, StreamKey::derive(&dek, 0), Window::whole(), 3);
    assert_eq!(r, Err(EncryptError::Tampered));
    assert!(out.is_empty());
}

#[test]
fn trailers_are_dropped() {
    let dek = dek();
    let data = plaintext(100, 1);
    let mut frames = Frames::data(vec![Bytes::from(data.clone())]);
    frames.frames.push_back(Frame::trailers(HeaderMap::new()));
    let (cipher, err) = drain(EncryptBody::with_stream_id(
        frames,
        StreamKey::derive(&dek, 0),
        SID,
        Some(100),
    ));
    assert!(err.is_none());
    let mut frames = Frames::data(vec![Bytes::from(cipher)]);
    frames.frames.push_back(Frame::trailers(HeaderMap::new()));
    let (plain, err) = drain(DecryptBody::new(frames, StreamKey::derive(&dek, 0)));
    assert!(err.is_none());
    assert_eq!(plain, data);
}

#[tokio::test]
async fn works_as_an_async_body() {
    use http_body_util::BodyExt;
    let dek = dek();
    let data = plaintext(3 * S + 11, 8);
    let enc = EncryptBody::new(
        Frames::data(split(&data, 4)),
        StreamKey::derive(&dek, 0),
        Some(data.len() as u64),
    );
    let dec = DecryptBody::new(enc, StreamKey::derive(&dek, 0));
    let out = dec.collect().await.unwrap().to_bytes();
    assert_eq!(out, data);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn round_trip_random(len in 0usize..(5 * S), seed in 2u64.., dseed in 2u64.., known: bool) {
        let dek = dek();
        let data = plaintext(len, seed);
        let key = StreamKey::derive(&dek, 0);
        let cipher = encrypt_with(&data, key, SID, known.then_some(len as u64), seed);
        prop_assert_eq!(cipher.len() as u64, encrypted_size(len as u64));
        prop_assert_eq!(decrypt(&cipher, &dek, dseed).unwrap(), data);
    }
}

// --- upload length checks -----------------------------------------------------------------

fn upload_error(data: &[u8], announced: u64, seed: u64) -> EncryptError {
    let body = EncryptBody::with_stream_id(
        Frames::data(split(data, seed)),
        StreamKey::derive(&dek(), 0),
        SID,
        Some(announced),
    );
    let (out, err) = drain(body);
    // Nothing that could complete the object: no FINAL segment went out.
    assert!(out.chunks(U).all(|segment| segment[1] == 0));
    *err.expect("the body fails")
        .downcast::<EncryptError>()
        .unwrap()
}

#[test]
fn short_body_is_a_length_mismatch() {
    for (len, announced) in [
        (0, 1),
        (9, 10),
        (S, S as u64 + 1),
        (2 * S - 1, 2 * S as u64),
    ] {
        let err = upload_error(&plaintext(len, 1), announced, 2);
        assert_eq!(
            err,
            EncryptError::LengthMismatch {
                expected: announced,
                actual: len as u64
            }
        );
    }
}

/// A client can announce any length: the size math saturates instead of overflowing, and the
/// body fails when it ends short, as any short body does.
#[test]
fn an_absurd_announced_length_cannot_overflow() {
    assert_eq!(encrypted_size(u64::MAX), u64::MAX);
    assert_eq!(
        encrypted_size(MAX_OBJECT_SIZE),
        MAX_OBJECT_SIZE + 32 * (MAX_OBJECT_SIZE / S as u64)
    );
    let body = EncryptBody::with_stream_id(
        Frames::data(split(&plaintext(10, 1), 4)),
        StreamKey::derive(&dek(), 0),
        SID,
        Some(u64::MAX),
    );
    assert_eq!(body.size_hint().exact(), Some(u64::MAX));
    let err = upload_error(&plaintext(10, 1), u64::MAX, 4);
    assert_eq!(
        err,
        EncryptError::LengthMismatch {
            expected: u64::MAX,
            actual: 10
        }
    );
    // A stored size beyond what S3 holds is not a range of anything.
    assert_eq!(
        RangePlan::new(
            Layout::SingleStream {
                plaintext_size: u64::MAX
            },
            ByteRange::parse("bytes=0-9").unwrap().unwrap()
        )
        .err(),
        Some(EncryptError::InvalidSize(u64::MAX))
    );
}

#[test]
fn long_body_is_a_length_mismatch() {
    for (len, announced) in [(1, 0), (11, 10), (S + 1, S as u64)] {
        let err = upload_error(&plaintext(len, 1), announced, 0);
        assert_eq!(
            err,
            EncryptError::LengthMismatch {
                expected: announced,
                actual: len as u64
            }
        );
    }
    // Found at the first byte too many, whatever the framing: the FINAL segment never left.
    let data = plaintext(2 * S + 1, 1);
    let body = EncryptBody::with_stream_id(
        Frames::data(split(&data, 1)),
        StreamKey::derive(&dek(), 0),
        SID,
        Some(2 * S as u64),
    );
    let (out, err) = drain(body);
    assert_eq!(out.len(), U, "only the first, non-final segment");
    assert_eq!(
        *err.unwrap().downcast::<EncryptError>().unwrap(),
        EncryptError::LengthMismatch {
            expected: 2 * S as u64,
            actual: 2 * S as u64 + 1
        }
    );
}

#[test]
fn inner_errors_pass_through() {
    let mut frames = Frames::data(vec![Bytes::from(plaintext(S + 3, 1))]);
    frames.error = Some("client went away".into());
    let (out, err) = drain(EncryptBody::new(frames, StreamKey::derive(&dek(), 0), None));
    let err = err.unwrap();
    assert!(err.downcast_ref::<EncryptError>().is_none());
    assert_eq!(err.to_string(), "client went away");
    assert_eq!(out.len(), U);

    let cipher = encrypt(&plaintext(2 * S, 1), &dek(), 0);
    let mut frames = Frames::data(vec![Bytes::copy_from_slice(&cipher[..U + 10])]);
    frames.error = Some("backend reset".into());
    let (out, err) = drain(DecryptBody::new(frames, StreamKey::derive(&dek(), 0)));
    assert_eq!(err.unwrap().to_string(), "backend reset");
    assert_eq!(out.len(), S);
}

// --- damaged streams ----------------------------------------------------------------------

/// A 3-segment object (2·S + 100 bytes) and its ciphertext.
fn object() -> (Vec<u8>, Vec<u8>) {
    let data = plaintext(2 * S + 100, 42);
    let cipher = encrypt(&data, &dek(), 0);
    (data, cipher)
}

fn decrypt_err(cipher: &[u8]) -> EncryptError {
    for seed in [0, 7] {
        let r = decrypt(cipher, &dek(), seed);
        assert!(r.is_err(), "decrypted a damaged stream");
    }
    decrypt(cipher, &dek(), 0).unwrap_err()
}

#[test]
fn flipped_header_bytes() {
    let (_, cipher) = object();
    let malformed = |why| EncryptError::Malformed(why);
    // (byte within segment 1's header, bit, error)
    let cases = [
        (0, 0x01, malformed("unknown segment format version")),
        (0, 0x80, malformed("unknown segment format version")),
        (1, 0x02, malformed("unknown segment flags")),
        (1, 0x01, EncryptError::Tampered), // FINAL flag: authenticated
        (2, 0x01, EncryptError::Tampered), // part 256: another part
        (3, 0x01, EncryptError::Tampered), // part 1
        (2, 0x80, malformed("part number out of range")),
        (4, 0x01, malformed("segment payload longer than a segment")),
        (5, 0x01, EncryptError::Tampered), // length 0: those 32 bytes cannot verify
        (5, 0x02, malformed("segment payload longer than a segment")),
        (6, 0x01, malformed("segment payload longer than a segment")),
        (7, 0x01, malformed("segment payload longer than a segment")),
        (8, 0x01, EncryptError::Tampered), // stream id
        (15, 0x80, EncryptError::Tampered),
    ];
    for (byte, bit, want) in cases {
        let mut c = cipher.clone();
        c[U + byte] ^= bit;
        assert_eq!(decrypt_err(&c), want, "byte {byte} bit {bit:#x}");
    }
    // In the first segment: the stream id is not yet known, authentication catches it.
    let mut c = cipher.clone();
    c[9] ^= 1;
    assert_eq!(decrypt_err(&c), EncryptError::Tampered);
}

#[test]
fn flipped_payload_and_tag_bytes() {
    let (_, cipher) = object();
    for at in [
        16,
        17,
        16 + S / 2,
        16 + S - 1,
        U - 16,
        U - 1,
        U + 16,
        2 * U + 16,
        cipher.len() - 1,
    ] {
        let mut c = cipher.clone();
        c[at] ^= 0x20;
        assert_eq!(decrypt_err(&c), EncryptError::Tampered, "byte {at}");
    }
}

#[test]
fn no_plaintext_of_a_tampered_segment() {
    let (data, mut cipher) = object();
    cipher[U + 100] ^= 1;
    let (out, r) = decrypt_window(&cipher, StreamKey::derive(&dek(), 0), Window::whole(), 0);
    assert_eq!(r, Err(EncryptError::Tampered));
    assert_eq!(out, data[..S], "only the segment before it");
}

#[test]
fn swapped_segments() {
    let (_, cipher) = object();
    let s = segments(&cipher);
    let c = [s[1].clone(), s[0].clone(), s[2].clone()].concat();
    assert_eq!(decrypt_err(&c), EncryptError::Tampered);
    // The two last: the FINAL one first.
    let c = [s[0].clone(), s[2].clone(), s[1].clone()].concat();
    assert_eq!(decrypt_err(&c), EncryptError::Tampered);
}

#[test]
fn dropped_segments() {
    let (_, cipher) = object();
    let s = segments(&cipher);
    // The last: the stream ends without its FINAL segment.
    let c = [s[0].clone(), s[1].clone()].concat();
    assert_eq!(
        decrypt_err(&c),
        EncryptError::Malformed("the stream ends without a final segment")
    );
    // A middle one: the next is read at the wrong index.
    let c = [s[0].clone(), s[2].clone()].concat();
    assert_eq!(decrypt_err(&c), EncryptError::Tampered);
    // The first.
    let c = [s[1].clone(), s[2].clone()].concat();
    assert_eq!(decrypt_err(&c), EncryptError::Tampered);
    // Everything.
    assert_eq!(
        decrypt_err(&[]),
        EncryptError::Malformed("the stream ends without a final segment")
    );
}

#[test]
fn truncated_tag_or_segment() {
    let (_, cipher) = object();
    for cut in [1, 5, 16, 17, 31] {
        let c = &cipher[..cipher.len() - cut];
        assert_eq!(
            decrypt_err(c),
            EncryptError::Malformed("the stream ends inside a segment"),
            "cut {cut}"
        );
    }
    // Inside a header.
    assert_eq!(
        decrypt_err(&cipher[..U + 5]),
        EncryptError::Malformed("the stream ends inside a segment")
    );
}

#[test]
fn data_after_final() {
    let (_, cipher) = object();
    let s = segments(&cipher);
    for extra in [vec![0u8], s[2].clone(), s[0].clone()] {
        let c = [cipher.clone(), extra].concat();
        assert_eq!(
            decrypt_err(&c),
            EncryptError::Malformed("data after the last segment")
        );
    }
    // An empty object followed by anything.
    let empty = encrypt(&[], &dek(), 0);
    let c = [empty.clone(), empty].concat();
    assert_eq!(
        decrypt_err(&c),
        EncryptError::Malformed("data after the last segment")
    );
}

#[test]
fn missing_or_misplaced_final() {
    let key = StreamKey::derive(&dek(), 0);
    let full = plaintext(S, 1);
    // Two full segments, neither FINAL.
    let c = [
        key.seal(SID, 0, false, &full).unwrap(),
        key.seal(SID, 1, false, &full).unwrap(),
    ]
    .concat();
    assert_eq!(
        decrypt_err(&c),
        EncryptError::Malformed("the stream ends without a final segment")
    );
    // A FINAL segment followed by a properly sealed next one.
    let c = [
        key.seal(SID, 0, true, &full).unwrap(),
        key.seal(SID, 1, true, &full[..3]).unwrap(),
    ]
    .concat();
    assert_eq!(
        decrypt_err(&c),
        EncryptError::Malformed("data after the last segment")
    );
    // A k·S object ending in an extra empty FINAL segment (not the canonical layout).
    let c = [
        key.seal(SID, 0, false, &full).unwrap(),
        key.seal(SID, 1, true, &[]).unwrap(),
    ]
    .concat();
    assert_eq!(
        decrypt_err(&c),
        EncryptError::Malformed("an empty final segment after data")
    );
    // Sealing refuses a short segment that is not final.
    assert_eq!(
        key.seal(SID, 0, false, &full[..10]).unwrap_err(),
        EncryptError::Malformed("segment payload of the wrong length")
    );
}

#[test]
fn segment_from_another_object_or_part() {
    let (_, cipher) = object();
    let data = plaintext(2 * S + 100, 42);
    // Same DEK and part, another attempt (stream id): spliced in, refused.
    let other_attempt = encrypt_with(
        &data,
        StreamKey::derive(&dek(), 0),
        *b"attem\0\0\0",
        None,
        0,
    );
    // Another object (another DEK).
    let other_dek = DataKey::from_bytes([8u8; 32]);
    let other_object = encrypt(&data, &other_dek, 0);
    // Another part of the same upload.
    let other_part = encrypt_with(&data, StreamKey::derive(&dek(), 1), SID, None, 0);
    for other in [&other_attempt, &other_object, &other_part] {
        for i in 0..3 {
            let mut s = segments(&cipher);
            s[i] = segments(other)[i].clone();
            assert_eq!(
                decrypt_err(&s.concat()),
                EncryptError::Tampered,
                "segment {i}"
            );
        }
    }
    // A part-2 segment in part 1's stream.
    let part1 = encrypt_with(&data, StreamKey::derive(&dek(), 1), SID, None, 0);
    let part2 = encrypt_with(&data, StreamKey::derive(&dek(), 2), SID, None, 0);
    let mut s = segments(&part1);
    s[1] = segments(&part2)[1].clone();
    let (_, r) = decrypt_window(
        &s.concat(),
        StreamKey::derive(&dek(), 1),
        Window::whole(),
        0,
    );
    assert_eq!(r, Err(EncryptError::Tampered));
}

#[test]
fn wrong_dek() {
    let (_, cipher) = object();
    let r = decrypt(&cipher, &DataKey::from_bytes([9u8; 32]), 0);
    assert_eq!(r, Err(EncryptError::Tampered));
    let empty = encrypt(&[], &dek(), 0);
    assert_eq!(
        decrypt(&empty, &DataKey::generate(), 0),
        Err(EncryptError::Tampered)
    );
}

// --- ranges -------------------------------------------------------------------------------

/// Reads `range` of an object of `size` bytes the way the layer will: plan, fetch the backend
/// range from the stored bytes, decrypt the window; checks the answer against the plaintext.
fn check_range(data: &[u8], cipher: &[u8], range: ByteRange, want: (u64, u64)) {
    let size = data.len() as u64;
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: size,
        },
        range,
    )
    .unwrap();
    assert_eq!((plan.first(), plan.last()), want, "{range:?} of {size}");
    assert_eq!(
        plan.content_range(),
        format!("bytes {}-{}/{size}", want.0, want.1)
    );
    assert_eq!(plan.len(), want.1 - want.0 + 1);
    let (bf, bl) = plan.backend_range();
    assert_eq!(plan.backend_range_header(), format!("bytes={bf}-{bl}"));
    assert_eq!(bf % U as u64, 0, "starts on a segment");
    assert!(
        bl + 1 == cipher.len() as u64 || (bl + 1) % U as u64 == 0,
        "ends on a segment"
    );
    // Whole segments only, never more than the ones holding the range.
    let segs = (bl + 1 - bf).div_ceil(U as u64);
    assert_eq!(segs, want.1 / S as u64 - want.0 / S as u64 + 1);
    assert_eq!(plan.window().len(), Some(plan.len()));
    for seed in [0, 3] {
        let fetched = &cipher[bf as usize..=bl as usize];
        let (_, r) = decrypt_window(fetched, StreamKey::derive(&dek(), 0), plan.window(), seed);
        assert_eq!(
            r.unwrap(),
            &data[want.0 as usize..=want.1 as usize],
            "{range:?} of {size}"
        );
    }
    let mut body = DecryptBody::window(
        Frames::data(vec![]),
        StreamKey::derive(&dek(), 0),
        plan.window(),
    );
    assert_eq!(body.size_hint().exact(), Some(plan.len()));
    let _ = Pin::new(&mut body).poll_frame(&mut Context::from_waker(Waker::noop()));
}

#[test]
fn ranges_at_every_boundary() {
    let s = S as u64;
    for size in [1, S - 1, S, S + 1, 2 * S, 2 * S + 1, 3 * S + 100] {
        let data = plaintext(size, size as u64);
        let cipher = encrypt(&data, &dek(), 0);
        let p = size as u64;
        let last = p - 1;
        let mut points = vec![
            0,
            1,
            s - 1,
            s,
            s + 1,
            2 * s - 1,
            2 * s,
            2 * s + 1,
            last.saturating_sub(1),
            last,
        ];
        points.retain(|&x| x < p);
        for &a in &points {
            for &b in &points {
                if a <= b {
                    check_range(&data, &cipher, ByteRange::FromTo(a, b), (a, b));
                }
            }
            check_range(&data, &cipher, ByteRange::From(a), (a, last));
            check_range(&data, &cipher, ByteRange::FromTo(a, p + 1000), (a, last));
            check_range(&data, &cipher, ByteRange::Suffix(p - a), (a, last));
        }
        // A suffix longer than the object is the whole object.
        check_range(&data, &cipher, ByteRange::Suffix(p + 1), (0, last));
        check_range(&data, &cipher, ByteRange::Suffix(u64::MAX), (0, last));
        // Beyond the end.
        for r in [
            ByteRange::From(p),
            ByteRange::FromTo(p, p + 5),
            ByteRange::FromTo(u64::MAX, u64::MAX),
            ByteRange::Suffix(0),
        ] {
            assert_eq!(
                RangePlan::new(Layout::SingleStream { plaintext_size: p }, r),
                Err(EncryptError::InvalidRange),
                "{r:?} of {p}"
            );
        }
    }
}

#[test]
fn ranges_of_an_empty_object() {
    for r in ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0"] {
        let r = ByteRange::parse(r).unwrap().unwrap();
        assert_eq!(
            RangePlan::new(Layout::SingleStream { plaintext_size: 0 }, r),
            Err(EncryptError::InvalidRange)
        );
    }
}

#[test]
fn range_header_parsing() {
    assert_eq!(
        ByteRange::parse("bytes=0-0"),
        Ok(Some(ByteRange::FromTo(0, 0)))
    );
    assert_eq!(ByteRange::parse("bytes=5-"), Ok(Some(ByteRange::From(5))));
    assert_eq!(ByteRange::parse("bytes=-7"), Ok(Some(ByteRange::Suffix(7))));
    assert_eq!(
        ByteRange::parse(" bytes=10-20 "),
        Ok(Some(ByteRange::FromTo(10, 20)))
    );
    assert!(matches!(
        ByteRange::parse("bytes=0-1,5-6"),
        Err(EncryptError::UnsupportedRange(_))
    ));
    assert!(matches!(
        ByteRange::parse("bytes=-1, 3-"),
        Err(EncryptError::UnsupportedRange(_))
    ));
    // Not one valid range: ignored, the whole object is answered.
    for bad in [
        "",
        "bytes=",
        "bytes=-",
        "bytes=5-4",
        "bytes=a-b",
        "items=0-1",
        "bytes=+1-2",
        "bytes=1",
        "bytes=99999999999999999999-",
    ] {
        assert_eq!(ByteRange::parse(bad), Ok(None), "{bad:?}");
    }
    let err = EncryptError::UnsupportedRange("x").to_s3_error();
    assert!(matches!(err.code(), s3_core::S3ErrorCode::NotImplemented));
    assert!(matches!(
        EncryptError::InvalidRange.to_s3_error().code(),
        s3_core::S3ErrorCode::InvalidRange
    ));
}

#[test]
fn bodies_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<EncryptBody<Frames>>();
    assert_send_sync::<DecryptBody<Frames>>();
    assert_send_sync::<StreamKey>();
    assert_send_sync::<DataKey>();
}

#[test]
fn ranged_read_detects_truncation_and_extra_data() {
    let data = plaintext(3 * S + 100, 1);
    let cipher = encrypt(&data, &dek(), 0);
    // The last segment dropped: the store now claims a 3·S object, whose last segment must be
    // FINAL: it is not.
    let truncated = &cipher[..3 * U];
    let p = plaintext_size(truncated.len() as u64).unwrap();
    assert_eq!(p, 3 * S as u64);
    let plan = RangePlan::new(
        Layout::SingleStream { plaintext_size: p },
        ByteRange::Suffix(10),
    )
    .unwrap();
    let (bf, bl) = plan.backend_range();
    let (out, r) = decrypt_window(
        &truncated[bf as usize..=bl as usize],
        StreamKey::derive(&dek(), 0),
        plan.window(),
        0,
    );
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "the stream ends without a final segment"
        ))
    );
    assert!(out.is_empty());
    // A window ending before the last segment must not meet a FINAL one.
    let small = encrypt(&data[..S + 10], &dek(), 0);
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: 3 * S as u64 + 100,
        },
        ByteRange::FromTo(S as u64, S as u64 + 5),
    )
    .unwrap();
    let (_, r) = decrypt_window(&small[U..], StreamKey::derive(&dek(), 0), plan.window(), 0);
    assert_eq!(
        r,
        Err(EncryptError::Malformed("a final segment before the end"))
    );
    // More than the planned segments: refused, not ignored.
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: 3 * S as u64 + 100,
        },
        ByteRange::FromTo(0, 5),
    )
    .unwrap();
    let (_, r) = decrypt_window(
        &cipher[..2 * U],
        StreamKey::derive(&dek(), 0),
        plan.window(),
        0,
    );
    assert_eq!(
        r,
        Err(EncryptError::Malformed("data after the last segment"))
    );
    // The final segment shorter than the size claims.
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: 3 * S as u64 + 200,
        },
        ByteRange::Suffix(150),
    )
    .unwrap();
    let (_, r) = decrypt_window(
        &cipher[3 * U..],
        StreamKey::derive(&dek(), 0),
        plan.window(),
        0,
    );
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "the object is shorter than its size"
        ))
    );
}

#[test]
fn sized_whole_object_reads() {
    let data = plaintext(2 * S + 100, 5);
    let cipher = encrypt(&data, &dek(), 0);
    let p = data.len() as u64;
    let body = DecryptBody::window(
        Frames::data(vec![Bytes::from(cipher.clone())]),
        StreamKey::derive(&dek(), 0),
        Window::sized(p),
    );
    assert_eq!(body.size_hint().exact(), Some(p));
    let (out, err) = drain(body);
    assert!(err.is_none());
    assert_eq!(out, data);
    for (claimed, why) in [
        (p + 1, "the object is shorter than its size"),
        (p - 1, "the object is longer than its size"),
        (2 * S as u64, "the stream ends without a final segment"),
        (3 * S as u64, "the object is shorter than its size"),
    ] {
        let (_, r) = decrypt_window(
            &cipher,
            StreamKey::derive(&dek(), 0),
            Window::sized(claimed),
            0,
        );
        assert_eq!(r, Err(EncryptError::Malformed(why)), "claimed {claimed}");
    }
    // A suffix range checks the end the same way.
    let plan = RangePlan::new(
        Layout::SingleStream {
            plaintext_size: p - 1,
        },
        ByteRange::Suffix(10),
    )
    .unwrap();
    assert!(plan.window().ends_at_object_end());
    let (bf, _) = plan.backend_range();
    let (_, r) = decrypt_window(
        &cipher[bf as usize..],
        StreamKey::derive(&dek(), 0),
        plan.window(),
        0,
    );
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "the object is longer than its size"
        ))
    );
    // The empty object.
    let empty = encrypt(&[], &dek(), 0);
    let (_, r) = decrypt_window(&empty, StreamKey::derive(&dek(), 0), Window::sized(0), 0);
    assert_eq!(r.unwrap(), b"");
}

/// A body that makes `len` bytes on the fly, in frames of `frame` bytes: nothing of it is ever
/// held whole.
struct Generated {
    left: usize,
    frame: usize,
    counter: u8,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let n = self.frame.min(self.left);
        self.left -= n;
        self.counter = self.counter.wrapping_add(1);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![self.counter; n])))))
    }
}

#[test]
fn streams_in_bounded_frames() {
    // 64 MiB + 3 through both bodies, chained, never collected: every ciphertext frame is at
    // most one stored segment, every plaintext frame at most one segment.
    let len = (64 << 20) + 3;
    for frame in [1 << 20, 1000, 3 * S + 7] {
        let gen_body = Generated {
            left: len,
            frame,
            counter: 0,
        };
        let enc = EncryptBody::new(gen_body, StreamKey::derive(&dek(), 0), Some(len as u64));
        let mut dec = DecryptBody::new(Bounded(enc, U), StreamKey::derive(&dek(), 0));
        let mut cx = Context::from_waker(Waker::noop());
        let mut total = 0usize;
        while let Poll::Ready(Some(f)) = Pin::new(&mut dec).poll_frame(&mut cx) {
            let d = f.unwrap().into_data().unwrap();
            assert!(d.len() <= S);
            total += d.len();
        }
        assert_eq!(total, len);
    }
}

/// Passes frames through, asserting each is at most `.1` bytes.
struct Bounded<B>(B, usize);

impl<B: Body<Data = Bytes> + Unpin> Body for Bounded<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let max = self.1;
        let r = Pin::new(&mut self.0).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &r
            && let Some(d) = f.data_ref()
        {
            assert!(d.len() <= max, "a frame of {} bytes", d.len());
        }
        r
    }
}
