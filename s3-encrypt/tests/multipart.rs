//! Multipart objects: the part streams one after the other, read whole and by ranges through
//! `DecryptBody::multipart`, and every way their parts can be damaged, dropped, swapped or
//! mixed (each with its exact error).

#![allow(clippy::unwrap_used, missing_docs)]
// Test data: sizes are small and casts between them exact here.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame};
use proptest::prelude::*;
use s3_encrypt::format::{ENCRYPTED_SEGMENT_SIZE, multipart_plaintext_size};
use s3_encrypt::{
    BoxError, ByteRange, DataKey, DecryptBody, EncryptBody, EncryptError, Layout, RangePlan,
    SEGMENT_SIZE, StreamKey, Window,
};

const S: usize = SEGMENT_SIZE;
const U: usize = ENCRYPTED_SEGMENT_SIZE;

struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
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

/// `data` cut into frames: `seed == 0` one frame, `1` one-byte frames, else random lengths up
/// to 1.5 segments.
fn split(data: &[u8], seed: u64) -> Frames {
    let data = Bytes::copy_from_slice(data);
    Frames(match seed {
        0 => VecDeque::from([data]),
        1 => (0..data.len()).map(|i| data.slice(i..=i)).collect(),
        _ => {
            let mut rng = Rng(seed);
            let mut out = VecDeque::new();
            let mut at = 0;
            while at < data.len() {
                let n = ((rng.next() % (S as u64 * 3 / 2)) as usize + 1).min(data.len() - at);
                out.push_back(data.slice(at..at + n));
                at += n;
            }
            out
        }
    })
}

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Polls `body` to its end: the bytes yielded and the outcome. After an error it checks the
/// body keeps failing and never reports an end.
fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
    mut body: B,
) -> (Vec<u8>, Result<(), EncryptError>) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => {
                assert!(body.is_end_stream());
                return (out, Ok(()));
            }
            Poll::Ready(Some(Ok(frame))) => out.extend_from_slice(&frame.into_data().unwrap()),
            Poll::Ready(Some(Err(e))) => {
                assert!(
                    !body.is_end_stream(),
                    "a failed body must not report its end"
                );
                assert!(
                    matches!(
                        Pin::new(&mut body).poll_frame(&mut cx),
                        Poll::Ready(Some(Err(_)))
                    ),
                    "a failed body must keep failing"
                );
                return (
                    out,
                    Err(*e.downcast::<EncryptError>().expect("an EncryptError")),
                );
            }
            Poll::Pending => panic!("the inner body is always ready"),
        }
    }
}

fn dek() -> DataKey {
    DataKey::from_bytes([7u8; 32])
}

/// One part's stream, as the gateway's UploadPart writes it.
fn encrypt_part(data: &[u8], dek: &DataKey, part: u16, known_len: bool) -> Vec<u8> {
    let body = EncryptBody::new(
        split(data, 2),
        StreamKey::derive(dek, part),
        known_len.then_some(data.len() as u64),
    );
    let (out, r) = drain(body);
    r.unwrap();
    out
}

/// A multipart object: its plaintext, and each part's stored stream.
struct Object {
    data: Vec<u8>,
    parts: Vec<Vec<u8>>,
}

impl Object {
    fn new(part_sizes: &[usize], known_len: bool) -> Self {
        let dek = dek();
        let mut data = Vec::new();
        let mut parts = Vec::new();
        for (i, &size) in part_sizes.iter().enumerate() {
            let plain = plaintext(size, (i as u64 + 1) * 1000 + size as u64);
            parts.push(encrypt_part(&plain, &dek, i as u16 + 1, known_len));
            data.extend_from_slice(&plain);
        }
        Self { data, parts }
    }

    /// `parts` parts of `k` segments each, then a last part of `last` bytes.
    fn uniform(k: usize, parts: usize, last: usize) -> Self {
        let mut sizes = vec![k * S; parts - 1];
        sizes.push(last);
        Self::new(&sizes, true)
    }

    fn cipher(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// Reads the whole object from `stored` bytes whose backend size is `stored_size`.
fn read_whole(stored: &[u8], stored_size: usize, seed: u64) -> (Vec<u8>, Result<(), EncryptError>) {
    let window = Window::multipart_whole(stored_size as u64).unwrap();
    drain(DecryptBody::multipart(split(stored, seed), &dek(), window))
}

fn whole_err(stored: &[u8], stored_size: usize) -> EncryptError {
    for seed in [0, 1, 5] {
        if seed == 1 && stored.len() > 3 * U {
            continue;
        }
        let (_, r) = read_whole(stored, stored_size, seed);
        assert!(r.is_err(), "read a damaged object");
    }
    read_whole(stored, stored_size, 0).1.unwrap_err()
}

fn plan(data_len: usize, stored_size: usize, range: ByteRange) -> RangePlan {
    RangePlan::new(
        Layout::Multipart {
            plaintext_size: data_len as u64,
            stored_size: stored_size as u64,
        },
        range,
    )
    .unwrap()
}

/// Reads `range` of the object stored as `stored` (plaintext `data_len` bytes) the way the
/// layer will: plan, fetch the backend range, decrypt the window.
fn read_range(
    stored: &[u8],
    data_len: usize,
    range: ByteRange,
    seed: u64,
) -> (RangePlan, Vec<u8>, Result<(), EncryptError>) {
    let plan = plan(data_len, stored.len(), range);
    let (bf, bl) = plan.backend_range();
    let fetched = &stored[bf as usize..=bl as usize];
    let body = DecryptBody::multipart(split(fetched, seed), &dek(), plan.window());
    assert_eq!(body.size_hint().exact(), Some(plan.len()));
    let (out, r) = drain(body);
    (plan, out, r)
}

fn check_range(obj: &Object, stored: &[u8], range: ByteRange, want: (u64, u64), seed: u64) {
    let size = obj.data.len() as u64;
    let (plan, out, r) = read_range(stored, obj.data.len(), range, seed);
    assert_eq!(r, Ok(()), "{range:?} of {size}");
    assert_eq!((plan.first(), plan.last()), want, "{range:?} of {size}");
    assert_eq!(
        plan.content_range(),
        format!("bytes {}-{}/{size}", want.0, want.1)
    );
    assert_eq!(plan.part(), 0);
    let (bf, bl) = plan.backend_range();
    assert_eq!(bf % U as u64, 0, "starts on a segment");
    assert!(bl + 1 == stored.len() as u64 || (bl + 1) % U as u64 == 0);
    assert_eq!(
        (bl + 1 - bf).div_ceil(U as u64),
        want.1 / S as u64 - want.0 / S as u64 + 1,
        "only the segments holding the range"
    );
    assert!(
        out == obj.data[want.0 as usize..=want.1 as usize],
        "{range:?} of {size}: wrong bytes"
    );
}

/// Part shapes: (segments per non-last part, parts, last part's bytes).
fn shapes() -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (k, parts) in [(1, 1), (1, 3), (2, 2), (2, 3)] {
        for last in [0, 1, S - 1, S, S + 1, (k + 1) * S + 7] {
            out.push((k, parts, last));
        }
    }
    out
}

// --- whole reads --------------------------------------------------------------------------

#[test]
fn whole_reads() {
    for (k, parts, last) in shapes() {
        let obj = Object::uniform(k, parts, last);
        let cipher = obj.cipher();
        let c = cipher.len() as u64;
        assert_eq!(multipart_plaintext_size(c), Ok(obj.data.len() as u64));
        let window = Window::multipart_whole(c).unwrap();
        assert_eq!(window.len(), Some(obj.data.len() as u64));
        assert_eq!(window.total_segments(), Some(c.div_ceil(U as u64)));
        for seed in [0, 3, 4] {
            let body = DecryptBody::multipart(split(&cipher, seed), &dek(), window);
            assert_eq!(body.size_hint().exact(), Some(obj.data.len() as u64));
            let (out, r) = drain(body);
            assert_eq!(r, Ok(()), "{k}x{parts}, last {last}");
            assert!(out == obj.data, "{k}x{parts}, last {last}");
        }
    }
    // One-byte frames.
    let obj = Object::uniform(1, 2, 5);
    let cipher = obj.cipher();
    let (out, r) = read_whole(&cipher, cipher.len(), 1);
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data);
}

#[test]
fn whole_reads_without_segment_counts() {
    // Parts uploaded without an announced length record no count: whole reads still work.
    let sizes = [2 * S, 2 * S, S + 3];
    let obj = Object::new(&sizes, false);
    let cipher = obj.cipher();
    let (out, r) = read_whole(&cipher, cipher.len(), 3);
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data);
    // Ranged reads need them.
    let (_, _, r) = read_range(&cipher, obj.data.len(), ByteRange::From(S as u64), 0);
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "the part's segment count is unknown"
        ))
    );
    // Unless they start at the object's start.
    let (_, out, r) = read_range(
        &cipher,
        obj.data.len(),
        ByteRange::FromTo(0, 3 * S as u64),
        0,
    );
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data[..=3 * S]);
}

// --- ranges -------------------------------------------------------------------------------

#[test]
fn ranges_at_every_boundary() {
    let s = S as u64;
    for (k, parts, last_len) in shapes() {
        let obj = Object::uniform(k, parts, last_len);
        let cipher = obj.cipher();
        let p = obj.data.len() as u64;
        if p == 0 {
            assert_eq!(
                RangePlan::new(
                    Layout::Multipart {
                        plaintext_size: 0,
                        stored_size: 32
                    },
                    ByteRange::From(0)
                ),
                Err(EncryptError::InvalidRange)
            );
            continue;
        }
        let last = p - 1;
        let part = k as u64 * s;
        let mut points = vec![0, 1, s - 1, s, s + 1, last.saturating_sub(1), last];
        for j in 1..parts as u64 {
            points.extend([j * part - 1, j * part, j * part + 1]);
        }
        points.sort_unstable();
        points.dedup();
        points.retain(|&x| x < p);
        for (n, &a) in points.iter().enumerate() {
            let seed = n as u64 % 3 * 4;
            for &b in &points {
                if a <= b {
                    check_range(&obj, &cipher, ByteRange::FromTo(a, b), (a, b), seed);
                }
            }
            check_range(&obj, &cipher, ByteRange::From(a), (a, last), seed);
            check_range(&obj, &cipher, ByteRange::Suffix(p - a), (a, last), seed);
        }
        // A suffix longer than the object is the whole object; beyond the end is refused.
        check_range(&obj, &cipher, ByteRange::Suffix(p + 1), (0, last), 0);
        check_range(
            &obj,
            &cipher,
            ByteRange::FromTo(last, p + 99),
            (last, last),
            0,
        );
        for r in [ByteRange::From(p), ByteRange::Suffix(0)] {
            assert_eq!(
                RangePlan::new(
                    Layout::Multipart {
                        plaintext_size: p,
                        stored_size: cipher.len() as u64
                    },
                    r
                ),
                Err(EncryptError::InvalidRange)
            );
        }
    }
}

#[test]
fn layouts_must_agree_with_themselves() {
    let obj = Object::uniform(2, 3, 0);
    let c = obj.cipher().len() as u64;
    let p = obj.data.len() as u64;
    assert_eq!(p, 4 * S as u64);
    let layout = |plaintext_size, stored_size| {
        RangePlan::new(
            Layout::Multipart {
                plaintext_size,
                stored_size,
            },
            ByteRange::From(0),
        )
    };
    assert!(layout(p, c).is_ok());
    // The same plaintext size without the empty last part is another valid shape.
    assert!(layout(p, s3_encrypt::encrypted_size(p)).is_ok());
    assert_eq!(layout(p + 1, c), Err(EncryptError::InvalidSize(c)));
    assert_eq!(layout(p, c + 1), Err(EncryptError::InvalidSize(c + 1)));
    assert_eq!(layout(0, 31), Err(EncryptError::InvalidSize(31)));
    assert_eq!(
        Window::multipart_whole(U as u64 + 5),
        Err(EncryptError::InvalidSize(U as u64 + 5))
    );
    // A range ending at the last byte of a k·S object whose last part is empty stops before
    // the empty segment.
    let plan = plan(p as usize, c as usize, ByteRange::Suffix(1));
    assert_eq!(plan.backend_range().1 + 1, 4 * U as u64);
    assert!(!plan.window().ends_with_final());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn random_ranges_and_frames(
        k in 1usize..3,
        parts in 1usize..4,
        last_len in 0usize..(4 * S),
        a in 0u64..(10 * S as u64),
        len in 1u64..(4 * S as u64),
        seed in 2u64..,
    ) {
        let obj = Object::uniform(k, parts, last_len);
        let cipher = obj.cipher();
        let p = obj.data.len() as u64;
        prop_assume!(p > 0);
        let a = a % p;
        let b = (a + len - 1).min(p - 1);
        let (_, out, r) = read_range(&cipher, obj.data.len(), ByteRange::FromTo(a, b), seed);
        prop_assert_eq!(r, Ok(()));
        prop_assert!(out == obj.data[a as usize..=b as usize]);
        let (out, r) = read_whole(&cipher, cipher.len(), seed);
        prop_assert_eq!(r, Ok(()));
        prop_assert!(out == obj.data);
    }
}

// --- damaged objects ----------------------------------------------------------------------

/// Three parts of two segments, then a last part of one and a half.
fn object() -> Object {
    Object::uniform(2, 4, S + S / 2)
}

/// Every range over the object stored as `stored`, reading at least one segment of part
/// `part` (1-based, parts of two segments), fails with `want`.
fn ranges_fail(stored: &[u8], data_len: usize, part: usize, want: &EncryptError) {
    let first = (part - 1) * 2 * S;
    for (a, b) in [
        (first, first + 1),
        (first + S, first + S),
        (0, first + S + 1),
    ] {
        let (_, _, r) = read_range(stored, data_len, ByteRange::FromTo(a as u64, b as u64), 0);
        assert_eq!(r.as_ref(), Err(want), "{a}-{b}");
    }
}

#[test]
fn swapped_parts() {
    let obj = object();
    let mut parts = obj.parts.clone();
    parts.swap(1, 2);
    let c = parts.concat();
    assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered);
    ranges_fail(&c, obj.data.len(), 2, &EncryptError::Tampered);
    // The first two swapped: the very first segment is not part 1's.
    let mut parts = obj.parts.clone();
    parts.swap(0, 1);
    let c = parts.concat();
    assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered);
}

#[test]
fn dropped_parts() {
    let obj = object();
    let full = obj.cipher();
    // The last part missing from a body the size says is longer.
    let c = obj.parts[..3].concat();
    assert_eq!(
        whole_err(&c, full.len()),
        EncryptError::Malformed("the stream ends without a final segment")
    );
    // A middle part dropped, whatever the size claims.
    let c = [
        obj.parts[0].clone(),
        obj.parts[2].clone(),
        obj.parts[3].clone(),
    ]
    .concat();
    assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered);
    assert_eq!(whole_err(&c, full.len()), EncryptError::Tampered);
    ranges_fail(
        &c,
        c.len() - 32 * c.len().div_ceil(U),
        2,
        &EncryptError::Tampered,
    );
    // The limit of the format: an object cut consistently (body and size) after a whole
    // part is a well-formed object of fewer parts. Nothing in the segments says how many
    // parts there were; only the part count of the multipart ETag (not authenticated)
    // could tell.
    let c = obj.parts[..3].concat();
    let (out, r) = read_whole(&c, c.len(), 0);
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data[..6 * S]);
}

#[test]
fn segments_of_two_attempts_in_one_part() {
    let obj = object();
    let plain = obj.data[2 * S..4 * S].to_vec();
    let retry = encrypt_part(&plain, &dek(), 2, true);
    assert_ne!(retry, obj.parts[1], "another stream id");
    // The whole retried part in place of the first attempt is just as good.
    let c = [
        obj.parts[0].clone(),
        retry.clone(),
        obj.parts[2].clone(),
        obj.parts[3].clone(),
    ]
    .concat();
    let (out, r) = read_whole(&c, c.len(), 0);
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data);
    // Mixed inside the part: refused.
    for (first, second) in [(&obj.parts[1], &retry), (&retry, &obj.parts[1])] {
        let part = [&first[..U], &second[U..]].concat();
        let c = [
            obj.parts[0].clone(),
            part,
            obj.parts[2].clone(),
            obj.parts[3].clone(),
        ]
        .concat();
        assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered);
        let (_, _, r) = read_range(
            &c,
            obj.data.len(),
            ByteRange::FromTo(2 * S as u64, 3 * S as u64),
            0,
        );
        assert_eq!(r, Err(EncryptError::Tampered));
    }
}

#[test]
fn flipped_bytes() {
    let obj = object();
    let cipher = obj.cipher();
    let p = obj.data.len();
    for at in [
        9,
        20,
        U + 16,
        2 * U + 3,
        3 * U + 100,
        6 * U + 10,
        cipher.len() - 1,
    ] {
        let mut c = cipher.clone();
        c[at] ^= 0x10;
        assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered, "byte {at}");
        let seg = (at / U) as u64;
        let (_, _, r) = read_range(&c, p, ByteRange::FromTo(seg * S as u64, seg * S as u64), 0);
        assert_eq!(r, Err(EncryptError::Tampered), "byte {at}");
    }
    // The part number or segment count of a window's first segment: it cannot be placed.
    for (at, bit) in [(2 * U + 3, 0x01), (2 * U + 15, 0x01), (2 * U + 14, 0x80)] {
        let mut c = cipher.clone();
        c[at] ^= bit;
        let (_, _, r) = read_range(&c, p, ByteRange::From(2 * S as u64), 0);
        assert_eq!(r, Err(EncryptError::Tampered), "byte {at}");
    }
}

#[test]
fn segment_from_another_object() {
    let obj = object();
    let other_dek = DataKey::from_bytes([8u8; 32]);
    let mut other = Vec::new();
    for (i, part) in obj.parts.iter().enumerate() {
        let start = i * 2 * S;
        let len = part.len() - 32 * part.len().div_ceil(U);
        other.push(encrypt_part(
            &obj.data[start..start + len],
            &other_dek,
            i as u16 + 1,
            true,
        ));
    }
    let other = other.concat();
    let cipher = obj.cipher();
    assert_eq!(other.len(), cipher.len());
    for seg in [0, 1, 3, 6, 7] {
        let mut c = cipher.clone();
        let end = ((seg + 1) * U).min(c.len());
        c[seg * U..end].copy_from_slice(&other[seg * U..end]);
        assert_eq!(
            whole_err(&c, c.len()),
            EncryptError::Tampered,
            "segment {seg}"
        );
        let at = (seg * S) as u64;
        let (_, _, r) = read_range(&c, obj.data.len(), ByteRange::FromTo(at, at), 0);
        assert_eq!(r, Err(EncryptError::Tampered), "segment {seg}");
    }
    // A single-stream object read as multipart.
    let single = EncryptBody::new(
        split(&obj.data, 0),
        StreamKey::derive(&dek(), 0),
        Some(obj.data.len() as u64),
    );
    let (single, r) = drain(single);
    r.unwrap();
    assert_eq!(whole_err(&single, single.len()), EncryptError::Tampered);
    let (_, _, r) = read_range(&single, obj.data.len(), ByteRange::Suffix(5), 0);
    assert_eq!(r, Err(EncryptError::Tampered));
}

#[test]
fn truncated_last_segment() {
    let obj = object();
    let cipher = obj.cipher();
    for cut in [1, 16, 33] {
        let c = &cipher[..cipher.len() - cut];
        // The size claims the whole object, or the store's shorter size.
        for size in [cipher.len(), c.len()] {
            assert_eq!(
                whole_err(c, size),
                EncryptError::Malformed("the stream ends inside a segment"),
                "cut {cut}"
            );
        }
    }
    // The last part's FINAL segment dropped: the last part's count runs past the end; a
    // range in it cannot place its segment (its count says it would start a segment later).
    let c = &cipher[..cipher.len() - (S / 2 + 32)];
    assert_eq!(
        whole_err(c, c.len()),
        EncryptError::Malformed("a part runs past the end of the object")
    );
    let (_, _, r) = read_range(
        c,
        c.len() - 32 * c.len().div_ceil(U),
        ByteRange::Suffix(1),
        0,
    );
    assert_eq!(r, Err(EncryptError::Tampered));
    // Without counts the missing FINAL segment is found at the object's end.
    let obj = Object::new(&[2 * S, 2 * S, S + S / 2], false);
    let cipher = obj.cipher();
    let c = &cipher[..cipher.len() - (S / 2 + 32)];
    assert_eq!(
        whole_err(c, c.len()),
        EncryptError::Malformed("the stream ends without a final segment")
    );
}

#[test]
fn part_with_the_wrong_number() {
    let obj = object();
    let plain = obj.data[2 * S..4 * S].to_vec();
    let mut parts = obj.parts.clone();
    parts[1] = encrypt_part(&plain, &dek(), 3, true);
    let c = parts.concat();
    assert_eq!(whole_err(&c, c.len()), EncryptError::Tampered);
    ranges_fail(&c, obj.data.len(), 2, &EncryptError::Tampered);
}

#[test]
fn parts_of_different_sizes() {
    let non_uniform = EncryptError::Malformed("the parts are not all the same size");
    for known in [true, false] {
        // Two segments, then three, then the last part.
        let obj = Object::new(&[2 * S, 3 * S, S + 1], known);
        let c = obj.cipher();
        assert_eq!(whole_err(&c, c.len()), non_uniform, "counts known: {known}");
        // Three, then two.
        let obj = Object::new(&[3 * S, 2 * S, S + 1], known);
        let c = obj.cipher();
        assert_eq!(whole_err(&c, c.len()), non_uniform, "counts known: {known}");
    }
    // A range crossing from a part into a larger non-last one.
    let obj = Object::new(&[2 * S, 2 * S, 3 * S, S], true);
    let c = obj.cipher();
    let (_, _, r) = read_range(
        &c,
        obj.data.len(),
        ByteRange::FromTo(3 * S as u64, 5 * S as u64),
        0,
    );
    assert_eq!(r, Err(non_uniform));
    // A range starting in a part not where uniform parts put it: it cannot be placed.
    let obj = Object::new(&[2 * S, 3 * S, S], true);
    let c = obj.cipher();
    let (_, _, r) = read_range(&c, obj.data.len(), ByteRange::From(3 * S as u64), 0);
    assert_eq!(r, Err(EncryptError::Tampered));
}

#[test]
fn short_part_in_the_middle() {
    // Part 2 ends in a short FINAL segment: its size is a valid size (6 segments, the last
    // short), but the short segment is not the object's last.
    for known in [true, false] {
        let obj = Object::new(&[2 * S, S + 10, 2 * S], known);
        let c = obj.cipher();
        assert_eq!(
            whole_err(&c, c.len()),
            EncryptError::Malformed("a part that is not the last is not whole segments")
        );
    }
}

#[test]
fn data_after_the_end() {
    let obj = object();
    let cipher = obj.cipher();
    let c = [cipher.clone(), obj.parts[3].clone()].concat();
    assert_eq!(
        whole_err(&c, cipher.len()),
        EncryptError::Malformed("data after the last segment")
    );
}

#[test]
fn windows_are_for_one_kind_of_reader() {
    let obj = object();
    let cipher = obj.cipher();
    let (_, r) = drain(DecryptBody::multipart(
        split(&cipher, 0),
        &dek(),
        Window::whole(),
    ));
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "a single-stream window given to a multipart reader"
        ))
    );
    let (_, r) = drain(DecryptBody::window(
        split(&cipher, 0),
        StreamKey::derive(&dek(), 1),
        Window::multipart_whole(cipher.len() as u64).unwrap(),
    ));
    assert_eq!(
        r,
        Err(EncryptError::Malformed(
            "a multipart window given to a single-stream reader"
        ))
    );
    // One part read alone as a single stream works (it is one).
    let (out, r) = drain(DecryptBody::new(
        split(&obj.parts[1], 0),
        StreamKey::derive(&dek(), 2),
    ));
    assert_eq!(r, Ok(()));
    assert_eq!(out, obj.data[2 * S..4 * S]);
}
