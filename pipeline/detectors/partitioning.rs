//! Is a keyed source really partitioned by the correlation key? The partitioners producers
//! use, a sample of where keys landed, and the rule that raises `partitioning_mismatch`.
//!
//! Workflow state is per partition number, so a source that claims to be keyed by the
//! correlation key must have put every key on `partitioner(key) % partitions` of the
//! partitioner its producers use. The Java client hashes with murmur2; librdkafka's default is
//! CRC32 (`consistent_random`); FNV-1a is librdkafka's third choice. These are the same
//! functions librdkafka's `murmur2`, `consistent` and `fnv1a` partitioners compute (a test
//! produces through librdkafka with each one and compares), for keys that are not empty (the
//! `_random` variants scatter empty keys, which a correlation key never is).

/// A key-hashing partitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hash {
    /// Java's `murmur2` (librdkafka `murmur2`, `murmur2_random`).
    Murmur2,
    /// CRC32 (librdkafka `consistent`, `consistent_random`).
    Crc32,
    /// FNV-1a, 32 bits (librdkafka `fnv1a`, `fnv1a_random`).
    Fnv1a,
}

impl Hash {
    pub const ALL: [Hash; 3] = [Hash::Murmur2, Hash::Crc32, Hash::Fnv1a];

    /// The hash of a `kafka.partitioner` / source `partitioner` value (None: `random`, which
    /// does not place keys at all).
    pub fn of(partitioner: &str) -> Option<Hash> {
        match partitioner {
            "murmur2" | "murmur2_random" => Some(Hash::Murmur2),
            "consistent" | "consistent_random" => Some(Hash::Crc32),
            "fnv1a" | "fnv1a_random" => Some(Hash::Fnv1a),
            _ => None,
        }
    }

    /// How the partitioner is named in a message: its librdkafka names.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Murmur2 => "murmur2 (murmur2_random, the Java client's default)",
            Hash::Crc32 => "CRC32 (consistent_random, librdkafka's default)",
            Hash::Fnv1a => "fnv1a (fnv1a_random)",
        }
    }

    /// The partition of `key` among `partitions`.
    pub fn partition(self, key: &[u8], partitions: i32) -> i32 {
        let n = partitions.max(1) as u32;
        let h = match self {
            Hash::Murmur2 => murmur2(key) & 0x7fff_ffff,
            Hash::Crc32 => crc32fast::hash(key),
            Hash::Fnv1a => fnv1a(key),
        };
        (h % n) as i32
    }
}

/// Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2): seed 0x9747b28c.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= (rest[2] as u32) << 16;
    }
    if rest.len() >= 2 {
        h ^= (rest[1] as u32) << 8;
    }
    if !rest.is_empty() {
        h ^= rest[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// 32-bit FNV-1a as librdkafka computes it: the absolute value of the signed hash, to match
/// Sarama's hash partitioner (the test against librdkafka found this).
fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    let h = h as i32;
    (if h < 0 { h.wrapping_neg() } else { h }) as u32
}

/// What a sample of (key, partition) records says about how a topic was partitioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub records: u64,
    /// Records not on the configured partitioner's partition.
    pub mismatches: u64,
    /// Per candidate, the records it would have put where they are.
    pub fits: [u64; 3],
    /// The first mismatch: (key, actual partition, expected partition).
    pub example: Option<(String, i32, i32)>,
}

impl Sample {
    /// Records one `key` found on `partition` of `partitions`, against `configured`.
    pub fn add(&mut self, configured: Hash, key: &str, partition: i32, partitions: i32) {
        self.records += 1;
        for (i, h) in Hash::ALL.iter().enumerate() {
            if h.partition(key.as_bytes(), partitions) == partition {
                self.fits[i] += 1;
            }
        }
        let expected = configured.partition(key.as_bytes(), partitions);
        if expected != partition {
            self.mismatches += 1;
            if self.example.is_none() {
                self.example = Some((key.to_string(), partition, expected));
            }
        }
    }

    /// Whether the sample shows the topic is not partitioned as configured: some mismatches,
    /// over 1% of what was sampled. (A correlation key reaching another partition now and then
    /// is a producer bug worth an alert too, but one record is not a partitioner.)
    pub fn mismatched(&self) -> bool {
        self.mismatches >= 3 && self.mismatches * 100 > self.records
    }

    /// The candidate that put every sampled record where it is, if one did.
    pub fn fitting(&self) -> Option<Hash> {
        Hash::ALL
            .iter()
            .zip(self.fits)
            .find(|(_, n)| *n == self.records)
            .map(|(h, _)| *h)
    }

    /// The message an operator reads: what is wrong, where, and what to do.
    pub fn describe(&self, topic: &str, configured: &str, partitions: i32) -> String {
        let fit = match self.fitting() {
            Some(h) => format!("the records fit {}", h.name()),
            None => "no known partitioner fits every record (a custom partitioner, or keys other than the correlation key)".into(),
        };
        let example = self
            .example
            .as_ref()
            .map(|(k, actual, expected)| {
                format!("; e.g. key `{k}` is on partition {actual}, but {configured} puts it on {expected}")
            })
            .unwrap_or_default();
        format!(
            "topic `{topic}` ({partitions} partitions) is not partitioned by the correlation key with the configured partitioner `{configured}`: \
             {} of {} sampled records are elsewhere; {fit}{example}. Set the source's `partitioner:` to the producers' partitioner, \
             or `repartition: true` if the topic is keyed by something else",
            self.mismatches, self.records
        )
    }
}

/// The check of one source topic as it is read: the first 1,000 records are sampled, then
/// every 100th. Raises one `partitioning_mismatch` alert (FIRING; the topic's partitioning does
/// not heal by itself) once the sample shows the topic is not partitioned as configured.
#[derive(Debug, Clone)]
pub struct PartitionCheck {
    pub source: String,
    pub topic: String,
    /// The configured partitioner's name (`partitioner:` of the source, or `kafka.partitioner`).
    pub configured: String,
    pub hash: Hash,
    pub partitions: i32,
    pub sample: Sample,
    seen: u64,
    raised: bool,
}

impl PartitionCheck {
    pub fn new(source: &str, topic: &str, configured: &str, hash: Hash, partitions: i32) -> Self {
        PartitionCheck {
            source: source.to_string(),
            topic: topic.to_string(),
            configured: configured.to_string(),
            hash,
            partitions,
            sample: Sample::default(),
            seen: 0,
            raised: false,
        }
    }

    /// A record of correlation key `key` read on `partition` at `now_ms`; the alert, the first
    /// time the sample shows a mismatch.
    pub fn observe(
        &mut self,
        key: &str,
        partition: i32,
        now_ms: i64,
    ) -> Option<crate::outputs::Alert> {
        self.seen += 1;
        if self.raised || (self.seen > 1_000 && !self.seen.is_multiple_of(100)) {
            return None;
        }
        self.sample.add(self.hash, key, partition, self.partitions);
        if self.sample.records < 20 || !self.sample.mismatched() {
            return None;
        }
        self.raised = true;
        Some(self.alert(now_ms))
    }

    fn alert(&self, now_ms: i64) -> crate::outputs::Alert {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("topic".to_string(), self.topic.clone());
        attributes.insert(
            "configured_partitioner".to_string(),
            self.configured.clone(),
        );
        attributes.insert(
            "fitting_partitioner".to_string(),
            self.sample
                .fitting()
                .map_or("none".to_string(), |h| h.name().to_string()),
        );
        attributes.insert("sampled".to_string(), self.sample.records.to_string());
        attributes.insert("mismatched".to_string(), self.sample.mismatches.to_string());
        if let Some((k, actual, expected)) = &self.sample.example {
            attributes.insert("sample_key".to_string(), k.clone());
            attributes.insert("actual_partition".to_string(), actual.to_string());
            attributes.insert("expected_partition".to_string(), expected.to_string());
        }
        crate::outputs::Alert {
            dedupe_id: format!("partitioning/{}", self.topic),
            kind: "partitioning_mismatch".to_string(),
            status: crate::outputs::AlertStatus::Firing,
            severity: crate::outputs::Severity::Critical,
            summary: self
                .sample
                .describe(&self.topic, &self.configured, self.partitions),
            workflow: None,
            step: None,
            key: None,
            source: Some(self.source.clone()),
            deadline: None,
            detected_at: now_ms,
            dimensions: Default::default(),
            attributes,
            lineage: Vec::new(),
            sightline_version: crate::VERSION.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partitioner_a_topology_accepts_has_a_hash() {
        for p in crate::topology::source::KEY_PARTITIONERS {
            assert!(Hash::of(p).is_some(), "{p}");
        }
    }

    #[test]
    fn murmur2_matches_kafkas_reference_values() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 3] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
        ];
        for (k, want) in cases {
            assert_eq!(murmur2(k) as i32, want, "{:?}", std::str::from_utf8(k));
        }
    }

    #[test]
    fn a_sample_names_the_partitioner_that_fits() {
        let mut s = Sample::default();
        for i in 0..200 {
            let key = format!("O-{i}");
            let p = Hash::Crc32.partition(key.as_bytes(), 12);
            s.add(Hash::Murmur2, &key, p, 12);
        }
        assert!(s.mismatched());
        assert_eq!(s.fitting(), Some(Hash::Crc32));
        let msg = s.describe("shop.orders", "murmur2_random", 12);
        assert!(
            msg.contains("the records fit CRC32 (consistent_random"),
            "{msg}"
        );
        assert!(msg.contains("e.g. key `O-"), "{msg}");
        let mut ok = Sample::default();
        for i in 0..200 {
            let key = format!("O-{i}");
            ok.add(
                Hash::Murmur2,
                &key,
                Hash::Murmur2.partition(key.as_bytes(), 12),
                12,
            );
        }
        assert!(!ok.mismatched());
    }
}
