//! Micro benchmarks of the national suite's primitives, for `bench/national.sh`, which runs
//! them beside `openssl speed` on the same machine: SM2 sign and verify (with the `Z_A` pre-hash
//! of a 32-byte message), SM2 encryption and decryption of a 32-byte key, SM3 and SM4-GCM of
//! 16 KiB.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use govtrust_kms::national::{Sm2KeyPair, Sm4Gcm, sm2_encrypt, sm2_generate, sm2_verify, sm3};

fn sm2(c: &mut Criterion) {
    let pair = Sm2KeyPair::from_pkcs8(&sm2_generate().unwrap()).unwrap();
    let message = [7u8; 32];
    let signature = pair.sign(&message).unwrap();
    let ciphertext = sm2_encrypt(pair.public_key(), &message).unwrap();
    let mut group = c.benchmark_group("sm2");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| {
        b.iter(|| pair.sign(black_box(&message)).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| sm2_verify(pair.public_key(), black_box(&message), &signature).unwrap())
    });
    group.bench_function("encrypt-32", |b| {
        b.iter(|| sm2_encrypt(pair.public_key(), black_box(&message)).unwrap())
    });
    group.bench_function("decrypt-32", |b| {
        b.iter(|| pair.decrypt(black_box(&ciphertext)).unwrap())
    });
    group.finish();
}

fn symmetric(c: &mut Criterion) {
    let key = Sm4Gcm::new(&[9u8; 16]).unwrap();
    let nonce = [1u8; 12];
    let mut buffer = vec![0u8; 16 * 1024];
    let mut group = c.benchmark_group("symmetric");
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.bench_function("sm4-gcm-seal-16k", |b| {
        b.iter(|| {
            key.seal_in_place(&nonce, b"", black_box(&mut buffer))
                .unwrap()
        })
    });
    let data = vec![5u8; 16 * 1024];
    group.bench_function("sm3-16k", |b| b.iter(|| sm3(black_box(&data))));
    group.finish();
}

criterion_group!(benches, sm2, symmetric);
criterion_main!(benches);
