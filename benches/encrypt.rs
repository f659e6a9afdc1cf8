//! Throughput of the encrypted segment stream (§8a): 64 MiB of plaintext through
//! `EncryptBody` and 64 MiB of ciphertext through `DecryptBody`, in memory, arriving in 1 MiB
//! frames, next to a baseline measured in the same run: raw AES-256-GCM (aws-lc-rs) sealing
//! and opening the same bytes in 64 KiB chunks, with no framing and no headers. Goals: ≥ 0.6×
//! the raw throughput and ≥ 1 GB/s on one core.
//!
//! The raw seal works in place on a buffer it owns, which no body adapter can do (its input
//! frames are immutable `Bytes`); on this kind of machine in-place AES-GCM over a large buffer
//! is markedly faster than the same AES-GCM out of place. So two reference lines are printed
//! too: raw sealing from the immutable plaintext out of place, and copy-then-seal-in-place,
//! which are what any streaming encryptor can reach. Raw opening needs writable ciphertext
//! for in place (the bench reuses its ciphertext), so its chunks are copied into a 64 KiB
//! scratch buffer first.
//!
//! ```text
//! cargo bench --bench encrypt
//! ```

#![allow(clippy::unwrap_used, missing_docs)]
// Test data: sizes are small and casts between them exact here.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss
)]

mod support;

use std::collections::VecDeque;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body::{Body, Frame};
use s3_tower::encrypt::{
    BoxError, DataKey, DecryptBody, EncryptBody, SEGMENT_SIZE, StreamKey, encrypted_size,
};

use support::interleaved;

/// Plaintext bytes per run.
const SIZE: usize = 64 << 20;
/// The frames the bodies are fed in, as a server or client would deliver them.
const FRAME: usize = 1 << 20;
/// The goals.
const RATIO_GOAL: f64 = 0.6;
const GBPS_GOAL: f64 = 1.0;

/// An in-memory body: the given frames, all ready.
struct Frames(VecDeque<Bytes>);

impl Frames {
    fn new(data: &Bytes) -> Self {
        Self(
            (0..data.len())
                .step_by(FRAME)
                .map(|at| data.slice(at..(at + FRAME).min(data.len())))
                .collect(),
        )
    }
}

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

/// Polls `body` to its end (every inner body here is always ready); returns the bytes seen.
fn drain<B: Body<Data = Bytes, Error = BoxError> + Unpin>(mut body: B) -> usize {
    let mut cx = Context::from_waker(Waker::noop());
    let mut n = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(None) => return n,
            Poll::Ready(Some(Ok(f))) => n += black_box(f.into_data().unwrap()).len(),
            Poll::Ready(Some(Err(e))) => panic!("{e}"),
            Poll::Pending => unreachable!(),
        }
    }
}

struct Env {
    dek: DataKey,
    plain: Bytes,
    cipher: Bytes,
    raw_key: LessSafeKey,
    /// Raw baseline: a buffer sealed in place, chunk by chunk.
    raw_buf: Vec<u8>,
    /// Raw baseline: each chunk's ciphertext and tag, to open.
    raw_sealed: Vec<Vec<u8>>,
}

fn nonce(i: usize) -> Nonce {
    let mut n = [0u8; 12];
    n[8..].copy_from_slice(&u32::try_from(i).unwrap().to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn setup() -> Env {
    let plain: Bytes = (0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect();
    let dek = DataKey::generate();
    let cipher = Bytes::from(encrypt(&dek, &plain));
    assert_eq!(cipher.len() as u64, encrypted_size(SIZE as u64));
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap());
    let raw_sealed = plain
        .chunks(SEGMENT_SIZE)
        .enumerate()
        .map(|(i, chunk)| {
            let mut sealed = chunk.to_vec();
            raw_key
                .seal_in_place_append_tag(nonce(i), Aad::empty(), &mut sealed)
                .unwrap();
            sealed
        })
        .collect();
    Env {
        dek,
        raw_buf: plain.to_vec(),
        plain,
        cipher,
        raw_key,
        raw_sealed,
    }
}

fn encrypt(dek: &DataKey, plain: &Bytes) -> Vec<u8> {
    let body = EncryptBody::new(
        Frames::new(plain),
        StreamKey::derive(dek, 0),
        Some(plain.len() as u64),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut body = body;
    let mut out = Vec::with_capacity(encrypted_size(plain.len() as u64) as usize);
    while let Poll::Ready(Some(f)) = Pin::new(&mut body).poll_frame(&mut cx) {
        out.extend_from_slice(&f.unwrap().into_data().unwrap());
    }
    out
}

fn stream_encrypt(env: &Env) {
    let body = EncryptBody::new(
        Frames::new(&env.plain),
        StreamKey::derive(&env.dek, 0),
        Some(SIZE as u64),
    );
    assert_eq!(drain(body) as u64, encrypted_size(SIZE as u64));
}

fn stream_decrypt(env: &Env) {
    let body = DecryptBody::new(Frames::new(&env.cipher), StreamKey::derive(&env.dek, 0));
    assert_eq!(drain(body), SIZE);
}

fn raw_seal(env: &mut Env) {
    for (i, chunk) in env.raw_buf.chunks_mut(SEGMENT_SIZE).enumerate() {
        let tag = env
            .raw_key
            .seal_in_place_separate_tag(nonce(i), Aad::empty(), chunk)
            .unwrap();
        black_box(&tag);
    }
}

/// Raw sealing as a streaming encryptor of immutable received buffers must do it: each chunk
/// copied into a 64 KiB scratch buffer, then sealed in place. Printed for reference, to tell
/// the cost of that copy from the cost of the format.
fn raw_copy_seal(env: &Env, scratch: &mut Vec<u8>) {
    for (i, chunk) in env.plain.chunks(SEGMENT_SIZE).enumerate() {
        scratch.clear();
        scratch.extend_from_slice(chunk);
        let tag = env
            .raw_key
            .seal_in_place_separate_tag(nonce(i), Aad::empty(), scratch)
            .unwrap();
        black_box(&tag);
    }
}

/// Raw sealing out of place, from the immutable plaintext into a reused 64 KiB buffer (what
/// `EncryptBody` does for whole segments inside one frame). Printed for reference.
fn raw_out_of_place_seal(env: &Env, scratch: &mut Vec<u8>) {
    scratch.resize(SEGMENT_SIZE + 16, 0);
    for (i, chunk) in env.plain.chunks(SEGMENT_SIZE).enumerate() {
        let (ct, tag) = scratch.split_at_mut(chunk.len());
        env.raw_key
            .seal_out_of_place_scatter(nonce(i), Aad::empty(), chunk, ct, &[], &mut tag[..16])
            .unwrap();
        black_box(&scratch);
    }
}

/// Opening in place needs the ciphertext in writable memory: each chunk is copied into a
/// 64 KiB scratch buffer first (cache-resident), as any reader of immutable received buffers
/// must. (aws-lc-rs's out-of-place `open_separate_gather` measured slower than this.)
fn raw_open(env: &Env, scratch: &mut Vec<u8>) {
    for (i, sealed) in env.raw_sealed.iter().enumerate() {
        scratch.clear();
        scratch.extend_from_slice(sealed);
        black_box(
            env.raw_key
                .open_in_place(nonce(i), Aad::empty(), scratch)
                .unwrap(),
        );
    }
}

fn bench_encrypt(c: &mut Criterion) {
    let mut env = setup();
    let mut out = Vec::with_capacity(SEGMENT_SIZE + 16);
    let mut group = c.benchmark_group("encrypt_64MiB");
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.bench_function("raw_aes_256_gcm_seal", |b| b.iter(|| raw_seal(&mut env)));
    group.bench_function("encrypt_body", |b| b.iter(|| stream_encrypt(&env)));
    group.bench_function("raw_aes_256_gcm_open", |b| {
        b.iter(|| raw_open(&env, &mut out));
    });
    group.bench_function("decrypt_body", |b| b.iter(|| stream_decrypt(&env)));
    group.finish();
    summary(&mut env);
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// The medians of each path and its raw baseline, measured interleaved, and their ratios.
fn summary(env: &mut Env) {
    const ROUNDS: usize = 15;
    let gbps = |secs: f64| SIZE as f64 / secs / 1e9;
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let env = std::cell::RefCell::new(env);
    let (raw, ours) = interleaved(
        ROUNDS,
        || timed(|| raw_seal(&mut env.borrow_mut())),
        || timed(|| stream_encrypt(&env.borrow())),
    );
    let mut out = Vec::with_capacity(SEGMENT_SIZE + 16);
    let (raw_copy, ours_c) = interleaved(
        ROUNDS,
        || timed(|| raw_copy_seal(&env.borrow(), &mut out)),
        || timed(|| stream_encrypt(&env.borrow())),
    );
    let (raw_oop, ours_o) = interleaved(
        ROUNDS,
        || timed(|| raw_out_of_place_seal(&env.borrow(), &mut out)),
        || timed(|| stream_encrypt(&env.borrow())),
    );
    println!(
        "encrypt 64 MiB, reference: segment stream {:.2} GB/s, raw AES-256-GCM seal out of place \
         {:.2} GB/s, ratio {:.3}",
        gbps(ours_o),
        gbps(raw_oop),
        raw_oop / ours_o,
    );
    let (raw_d, ours_d) = interleaved(
        ROUNDS,
        || timed(|| raw_open(&env.borrow(), &mut out)),
        || timed(|| stream_decrypt(&env.borrow())),
    );
    println!(
        "encrypt 64 MiB, reference: segment stream {:.2} GB/s, copy + raw AES-256-GCM seal {:.2} \
         GB/s, ratio {:.3}",
        gbps(ours_c),
        gbps(raw_copy),
        raw_copy / ours_c,
    );
    for (what, raw, ours) in [("encrypt", raw, ours), ("decrypt", raw_d, ours_d)] {
        let ratio = raw / ours;
        println!(
            "{what} 64 MiB: segment stream {:.2} GB/s, raw AES-256-GCM {:.2} GB/s, ratio {ratio:.3} \
             (goals ≥ {RATIO_GOAL}×: {}, ≥ {GBPS_GOAL} GB/s: {})",
            gbps(ours),
            gbps(raw),
            verdict(ratio >= RATIO_GOAL),
            verdict(gbps(ours) >= GBPS_GOAL),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = bench_encrypt
}
criterion_main!(benches);
