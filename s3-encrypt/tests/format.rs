//! The v1 format itself: header bytes, data keys, size arithmetic, and the stored bytes
//! checked against an independent implementation of §8a (RustCrypto `hkdf` + `aes-gcm`) in
//! both directions.

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

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::{Bytes, BytesMut};
use hkdf::Hkdf;
use http_body::{Body, Frame};
use proptest::prelude::*;
use s3_encrypt::format::{
    ENCRYPTED_SEGMENT_SIZE, HEADER_LEN, MAX_PART, TAG_LEN, VERSION, multipart_plaintext_size,
};
use s3_encrypt::{
    BoxError, DataKey, DecryptBody, EncryptBody, EncryptError, Header, OVERHEAD, SEGMENT_SIZE,
    StreamKey, encrypted_size, plaintext_size,
};
use sha2::Sha256;

const S: usize = SEGMENT_SIZE;
const U: usize = ENCRYPTED_SEGMENT_SIZE;

// --- header -------------------------------------------------------------------------------

#[test]
fn constants() {
    assert_eq!(S, 65536);
    assert_eq!(OVERHEAD, 32);
    assert_eq!(HEADER_LEN + TAG_LEN, OVERHEAD);
    assert_eq!(U, 65568);
    assert_eq!(VERSION, 1);
}

#[test]
fn header_bytes() {
    let h = Header {
        final_segment: true,
        part: 0x1234,
        payload_len: 0x0001_0000,
        stream_id: [1, 2, 3, 4, 5, 6, 7, 8],
    };
    let b = h.to_bytes();
    assert_eq!(b, [1, 1, 0x12, 0x34, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(Header::parse(&b), Ok(h));
    let h = Header {
        final_segment: false,
        part: MAX_PART,
        payload_len: 0,
        stream_id: [0xff; 8],
    };
    assert_eq!(Header::parse(&h.to_bytes()), Ok(h));
}

#[test]
fn header_refusals() {
    let good = Header {
        final_segment: false,
        part: 3,
        payload_len: 10,
        stream_id: [9; 8],
    }
    .to_bytes();
    let with = |i: usize, v: u8| {
        let mut b = good;
        b[i] = v;
        Header::parse(&b)
    };
    for v in [0, 2, 0x81, 0xff] {
        assert_eq!(
            with(0, v),
            Err(EncryptError::Malformed("unknown segment format version"))
        );
    }
    for v in [2, 3, 0x80, 0xff] {
        assert_eq!(
            with(1, v),
            Err(EncryptError::Malformed("unknown segment flags"))
        );
    }
    let mut b = good;
    b[2..4].copy_from_slice(&10_001u16.to_be_bytes());
    assert_eq!(
        Header::parse(&b),
        Err(EncryptError::Malformed("part number out of range"))
    );
    let mut b = good;
    b[4..8].copy_from_slice(&65_537u32.to_be_bytes());
    assert_eq!(
        Header::parse(&b),
        Err(EncryptError::Malformed(
            "segment payload longer than a segment"
        ))
    );
}

proptest! {
    #[test]
    fn header_round_trip(final_segment: bool, part in 0u16..=MAX_PART, payload_len in 0u32..=65536, stream_id: [u8; 8]) {
        let h = Header { final_segment, part, payload_len, stream_id };
        prop_assert_eq!(Header::parse(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn header_parse_never_panics(bytes: [u8; 16]) {
        let _ = Header::parse(&bytes);
    }
}

// --- data keys ----------------------------------------------------------------------------

#[test]
fn data_keys() {
    let k = DataKey::from_bytes([0xab; 32]);
    assert_eq!(k.as_bytes(), &[0xab; 32]);
    let debug = format!("{k:?}");
    assert_eq!(debug, "DataKey(..)");
    assert!(!debug.contains("ab") && !debug.contains("171"));
    let (a, b) = (DataKey::generate(), DataKey::generate());
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_ne!(a.as_bytes(), &[0; 32]);
    let sk = StreamKey::derive(&a, 12);
    assert_eq!(sk.part(), 12);
    assert!(!format!("{sk:?}").contains("key:"));
}

// --- sizes --------------------------------------------------------------------------------

#[test]
fn size_arithmetic() {
    let s = S as u64;
    let u = U as u64;
    for (p, c) in [
        (0, 32),
        (1, 33),
        (s - 1, u - 1),
        (s, u),
        (s + 1, u + 33),
        (3 * s, 3 * u),
        (3 * s + 1, 3 * u + 33),
        (5 << 40, (5 << 40) + 32 * (5 << 24)),
    ] {
        assert_eq!(encrypted_size(p), c, "E({p})");
        assert_eq!(plaintext_size(c), Ok(p), "P({c})");
    }
    // Shapes no plaintext encrypts to.
    for c in [0, 1, 31, u + 1, u + 31, u + 32, 2 * u + 32, 7 * u + 5] {
        assert_eq!(plaintext_size(c), Err(EncryptError::InvalidSize(c)), "{c}");
    }
}

#[test]
fn stream_segment_counts() {
    let h = |stream_id| Header {
        final_segment: false,
        part: 1,
        payload_len: 0,
        stream_id,
    };
    assert_eq!(h([9, 9, 9, 9, 9, 0, 0, 0]).stream_segments(), None);
    assert_eq!(h([9, 9, 9, 9, 9, 0, 0, 1]).stream_segments(), Some(1));
    assert_eq!(
        h([0, 0, 0, 0, 0, 0x01, 0x40, 0x00]).stream_segments(),
        Some(81_920)
    );
    assert_eq!(
        h([0xff; 8]).stream_segments(),
        Some(0xff_ffff),
        "the random bytes are not part of it"
    );
}

#[test]
fn multipart_size_arithmetic() {
    let s = S as u64;
    let u = U as u64;
    // Everything a single stream may be, with the same answer.
    for (p, c) in [
        (0, 32),
        (1, 33),
        (s - 1, u - 1),
        (s, u),
        (s + 1, u + 33),
        (3 * s, 3 * u),
        (3 * s + 1, 3 * u + 33),
    ] {
        assert_eq!(multipart_plaintext_size(c), Ok(p), "P({c})");
    }
    // An empty last part after whole parts: P = C - 32·ceil(C / U) still.
    for (p, c) in [(s, u + 32), (2 * s, 2 * u + 32), (80 * s, 80 * u + 32)] {
        assert_eq!(multipart_plaintext_size(c), Ok(p), "P({c})");
        assert_eq!(plaintext_size(c), Err(EncryptError::InvalidSize(c)));
    }
    for c in [0, 1, 31, u + 1, u + 31, 2 * u + 31, 7 * u + 5] {
        assert_eq!(
            multipart_plaintext_size(c),
            Err(EncryptError::InvalidSize(c)),
            "{c}"
        );
    }
}

proptest! {
    #[test]
    fn multipart_sizes_extend_single_sizes(c in 0u64..(1 << 44)) {
        match plaintext_size(c) {
            Ok(p) => prop_assert_eq!(multipart_plaintext_size(c), Ok(p)),
            Err(_) => {
                // Only the empty-last-part shape is added.
                if let Ok(p) = multipart_plaintext_size(c) {
                    prop_assert_eq!(c % U as u64, 32);
                    prop_assert_eq!(p, c - 32 - (c / U as u64) * 32);
                }
            }
        }
    }

    #[test]
    fn sizes_invert(p in 0u64..(1 << 44)) {
        prop_assert_eq!(plaintext_size(encrypted_size(p)), Ok(p));
    }

    #[test]
    fn every_valid_size_is_an_encrypted_size(c in 0u64..(1 << 44)) {
        if let Ok(p) = plaintext_size(c) {
            prop_assert_eq!(encrypted_size(p), c);
        }
    }
}

// --- the stored bytes, checked independently ---------------------------------------------

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

fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(mut body: B) -> Vec<u8> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => return out,
            Poll::Ready(Some(Ok(f))) => out.extend_from_slice(&f.into_data().unwrap()),
            Poll::Ready(Some(Err(e))) => panic!("{e}"),
            Poll::Pending => unreachable!(),
        }
    }
}

/// §8a's stream key, computed with RustCrypto: HKDF-SHA256, no salt, info
/// `"s3-tower/v1" || be16(part)`.
fn reference_key(dek: &[u8; 32], part: u16) -> Aes256Gcm {
    let mut info = b"s3-tower/v1".to_vec();
    info.extend_from_slice(&part.to_be_bytes());
    let mut okm = [0u8; 32];
    Hkdf::<Sha256>::new(None, dek)
        .expand(&info, &mut okm)
        .unwrap();
    Aes256Gcm::new_from_slice(&okm).unwrap()
}

/// Decrypts a stored stream with RustCrypto, checking every header field against §8a.
fn reference_decrypt(cipher: &[u8], dek: &[u8; 32], part: u16, stream_id: [u8; 8]) -> Vec<u8> {
    let aead = reference_key(dek, part);
    let n = cipher.len().div_ceil(U).max(1);
    let mut out = Vec::new();
    for (i, seg) in cipher.chunks(U).enumerate() {
        let last = i + 1 == n;
        assert_eq!(seg[0], 1, "version");
        assert_eq!(seg[1], u8::from(last), "FINAL on the last segment only");
        assert_eq!(u16::from_be_bytes([seg[2], seg[3]]), part);
        let len = u32::from_be_bytes(seg[4..8].try_into().unwrap()) as usize;
        assert_eq!(len, seg.len() - 32);
        if !last {
            assert_eq!(len, S);
        }
        assert_eq!(seg[8..16], stream_id);
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&stream_id);
        nonce[8..].copy_from_slice(&u32::try_from(i).unwrap().to_be_bytes());
        let plain = aead
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &seg[16..],
                    aad: &seg[..16],
                },
            )
            .expect("RustCrypto authenticates the segment");
        out.extend_from_slice(&plain);
    }
    out
}

/// Encrypts with RustCrypto, following §8a.
fn reference_encrypt(plain: &[u8], dek: &[u8; 32], part: u16, stream_id: [u8; 8]) -> Vec<u8> {
    let aead = reference_key(dek, part);
    let chunks: Vec<&[u8]> = if plain.is_empty() {
        vec![&[]]
    } else {
        plain.chunks(S).collect()
    };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let header = Header {
            final_segment: i + 1 == chunks.len(),
            part,
            payload_len: u32::try_from(chunk.len()).unwrap(),
            stream_id,
        }
        .to_bytes();
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&stream_id);
        nonce[8..].copy_from_slice(&u32::try_from(i).unwrap().to_be_bytes());
        let ct = aead
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: chunk,
                    aad: &header,
                },
            )
            .unwrap();
        out.extend_from_slice(&header);
        out.extend_from_slice(&ct);
    }
    out
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

#[test]
fn stored_bytes_follow_the_spec() {
    let dek_bytes = [0x42u8; 32];
    let dek = DataKey::from_bytes(dek_bytes);
    let sid = *b"\x01\x02\x03\x04\xa5\xb6\xc7\xd8";
    for part in [0u16, 1, 9999, 10_000] {
        for len in [0, 1, S - 1, S, S + 1, 2 * S, 2 * S + 1] {
            let plain = data(len);
            let body = EncryptBody::with_stream_id(
                Frames(VecDeque::from([Bytes::from(plain.clone())])),
                StreamKey::derive(&dek, part),
                sid,
                Some(len as u64),
            );
            let cipher = drain(body);
            assert_eq!(
                reference_decrypt(&cipher, &dek_bytes, part, sid),
                plain,
                "part {part}, {len} bytes"
            );
            // Byte for byte what the independent implementation writes.
            assert_eq!(cipher, reference_encrypt(&plain, &dek_bytes, part, sid));
        }
    }
}

#[test]
fn reads_what_the_reference_writes() {
    let dek_bytes = [0x17u8; 32];
    let dek = DataKey::from_bytes(dek_bytes);
    for len in [0, 1, S, 3 * S + 5] {
        let plain = data(len);
        let cipher = reference_encrypt(&plain, &dek_bytes, 5, [3, 3, 3, 3, 3, 0, 0, 0]);
        let body = DecryptBody::new(
            Frames(VecDeque::from([Bytes::from(cipher)])),
            StreamKey::derive(&dek, 5),
        );
        assert_eq!(drain(body), plain);
    }
}

#[test]
fn seal_and_open_one_segment() {
    let dek = DataKey::from_bytes([1; 32]);
    let key = StreamKey::derive(&dek, 2);
    let mut seg = key.seal([4; 8], 77, true, b"hello").unwrap();
    assert_eq!(seg.len(), 5 + OVERHEAD);
    // Independently: index 77 in the nonce.
    let aead = reference_key(&[1; 32], 2);
    let mut nonce = [4u8; 12];
    nonce[8..].copy_from_slice(&77u32.to_be_bytes());
    let plain = aead
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &seg[16..],
                aad: &seg[..16],
            },
        )
        .unwrap();
    assert_eq!(plain, b"hello");
    let mut copy = seg.clone();
    assert_eq!(
        key.open_in_place(76, &mut copy),
        Err(EncryptError::Tampered)
    );
    let h = key.open_in_place(77, &mut seg).unwrap();
    assert_eq!(
        h,
        Header {
            final_segment: true,
            part: 2,
            payload_len: 5,
            stream_id: [4; 8]
        }
    );
    assert_eq!(&seg[16..21], b"hello");
    // In place from a prepared buffer.
    let mut buf = BytesMut::from(&[0u8; 16][..]);
    buf.extend_from_slice(&vec![9u8; 65536]);
    key.seal_in_place([4; 8], 0, false, &mut buf).unwrap();
    assert_eq!(buf.len(), U);
    let mut seg = buf.to_vec();
    seg.truncate(U - 1);
    assert_eq!(
        key.open_in_place(0, &mut seg),
        Err(EncryptError::Malformed(
            "segment length does not match its header"
        ))
    );
    assert_eq!(
        key.open_in_place(0, &mut [1u8, 0, 0]),
        Err(EncryptError::Malformed("segment shorter than its header"))
    );
}

#[test]
fn pinned_vector() {
    // Frozen v1 bytes: the empty object and a 3-byte object, DEK = 32 × 0x42, part 0, stream
    // id 01..08. Any change here is a format change (and needs a new version byte).
    let dek = DataKey::from_bytes([0x42; 32]);
    let key = StreamKey::derive(&dek, 0);
    let sid = [1, 2, 3, 4, 5, 6, 7, 8];
    let hex = |b: &[u8]| {
        use std::fmt::Write;
        b.iter().fold(String::new(), |mut s, x| {
            write!(s, "{x:02x}").unwrap();
            s
        })
    };
    let empty = key.seal(sid, 0, true, b"").unwrap();
    let abc = key.seal(sid, 0, true, b"abc").unwrap();
    assert_eq!(
        hex(&empty),
        "01010000000000000102030405060708ad54dca56e8335b16b86234827c85500"
    );
    assert_eq!(
        hex(&abc),
        "01010000000000030102030405060708b8071e12cfb02d82027bab982bdc62f8848750"
    );
    assert_eq!(empty, reference_encrypt(b"", &[0x42; 32], 0, sid));
    assert_eq!(abc, reference_encrypt(b"abc", &[0x42; 32], 0, sid));
}
