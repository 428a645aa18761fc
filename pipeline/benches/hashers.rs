//! The hasher of the maps keyed by instance key (the batch's staged instances, the instance
//! cache, the committing overlay): std's SipHash against foldhash and rustc-hash (FxHash), on
//! keys shaped like the engine's (partition, workflow, correlation key: about 30 bytes).
//!
//! ```text
//! cargo bench --bench hashers
//! ```

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::Instant;

const KEYS: usize = 200_000;
const ROUNDS: usize = 5;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| {
            let mut k = Vec::with_capacity(32);
            k.extend_from_slice(&((i % 12) as u32).to_be_bytes());
            k.extend_from_slice(b"order-to-cash\0");
            k.extend_from_slice(format!("SO-{:08}", i * 7919 % 100_000_000).as_bytes());
            k
        })
        .collect()
}

/// Nanoseconds per operation: each key inserted, then looked up twice (a batch stages an
/// instance and the next event of the same order finds it), best of ROUNDS.
fn measure<S: BuildHasher + Default>(keys: &[Vec<u8>]) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut found = 0u64;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let mut map: HashMap<Vec<u8>, u64, S> = HashMap::with_hasher(S::default());
        for (i, k) in keys.iter().enumerate() {
            map.insert(k.clone(), i as u64);
        }
        found = 0;
        for _ in 0..2 {
            for k in keys {
                found += map.get(k.as_slice()).copied().unwrap_or(0) & 1;
            }
        }
        let ns = started.elapsed().as_nanos() as f64 / (3 * keys.len()) as f64;
        best = best.min(ns);
        std::hint::black_box(&map);
    }
    (best, found)
}

fn main() {
    let keys = keys();
    let runs = [
        (
            "std (SipHash-1-3, random seed)",
            measure::<std::hash::RandomState>(&keys),
        ),
        (
            "foldhash::fast (random seed)",
            measure::<foldhash::fast::RandomState>(&keys),
        ),
        (
            "rustc-hash (FxHash, fixed seed)",
            measure::<rustc_hash::FxBuildHasher>(&keys),
        ),
    ];
    println!("{KEYS} keys of about 30 bytes, insert + 2 lookups, best of {ROUNDS}:");
    println!("| hasher | ns per operation |");
    println!("|---|---|");
    for (name, (ns, found)) in runs {
        assert_eq!(found, runs_found(&keys));
        println!("| {name} | {ns:.1} |");
    }
}

fn runs_found(keys: &[Vec<u8>]) -> u64 {
    2 * (0..keys.len() as u64).filter(|i| i & 1 == 1).count() as u64
}
