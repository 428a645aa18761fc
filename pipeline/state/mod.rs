//! Local state in RocksDB, one column family per kind of state:
//!
//! | column family | key | value |
//! |---|---|---|
//! | `schemas` | `<partition BE u32>` · `avro/<topic>/<schema id BE u32>`, `avro-last/<topic>`, `json/<topic>/<field>/<kind>` | what drift detection knows, filed under the input partition that taught it |
//! | `instances` | `<partition BE u32><workflow>\0<correlation key>` | workflow instance state (`instances.rs`: version byte + postcard) |
//! | `timers` | `<partition BE u32><due ms BE u64><kind><step><workflow>\0<key>` | deadlines, a range scan in due order |
//! | `meta` | `changelog/<partition BE u32>`, `clock/<partition><topic>`, `announced/<partition><id>` | next changelog offset local state includes; stream clocks; outputs announced and side-monitor levels |
//!
//! Every key is built and read in [`keys`], and nowhere else. Every key carries the input partition that owns it, and its changelog record goes to that
//! partition: only the owner of a partition writes its changelog, which is what makes a
//! partition's checkpoint mean "everything up to here is applied".
//!
//! The engine is the only writer; detectors hand it what to remember.

pub mod changelog;
pub mod instances;
pub mod keys;
pub mod query;

/// Key-value pairs read from the store, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything drift detection knows, from every partition.
pub fn drift_knowledge(
    store: &Store,
) -> Result<Vec<crate::detectors::drift::Knowledge>, StateError> {
    Ok(store
        .scan_prefix(CF_SCHEMAS, b"")?
        .into_iter()
        .filter_map(|(k, v)| keys::parse_knowledge(&k, &v))
        .collect())
}

use std::path::Path;
use thiserror::Error;

pub const CF_SCHEMAS: &str = "schemas";
pub const CF_INSTANCES: &str = "instances";
pub const CF_TIMERS: &str = "timers";
pub const CF_META: &str = "meta";
const CFS: [&str; 4] = [CF_SCHEMAS, CF_INSTANCES, CF_TIMERS, CF_META];

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state store at {dir}: {source}. Is another Sightline using this state.dir? Set a different state.dir per instance.")]
    Open { dir: String, source: rocksdb::Error },
    #[error("state store: {0}")]
    Io(#[from] rocksdb::Error),
}

impl StateError {
    /// RocksDB found its files corrupt (a bad block, a broken manifest): local state cannot be
    /// trusted, but the changelog can rebuild it.
    pub fn is_corruption(&self) -> bool {
        let (StateError::Open { source, .. } | StateError::Io(source)) = self;
        source.kind() == rocksdb::ErrorKind::Corruption
    }
}

/// A file in a state dir that says its store was found corrupt: the next open moves the dir
/// aside instead of reading it.
pub const CORRUPT_MARKER: &str = "SIGHTLINE-STATE-CORRUPT";

/// Marks the state dir at `dir` as corrupt, with the reason, for the next open.
pub fn mark_corrupt(dir: &Path, why: &str) {
    let _ = std::fs::write(dir.join(CORRUPT_MARKER), why);
}

/// Moves the state dir at `dir` aside (kept for inspection) and returns where it went.
pub fn quarantine(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut aside = dir.with_file_name(format!("{name}.corrupt-{stamp}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.with_file_name(format!("{name}.corrupt-{stamp}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &aside)?;
    std::fs::create_dir_all(dir)?;
    Ok(aside)
}

/// One write, for [`Store::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(&'static str, Vec<u8>, Vec<u8>),
    Delete(&'static str, Vec<u8>),
}

pub struct Store {
    db: rocksdb::DB,
    /// The shared block cache (None when opened read-only).
    cache: Option<rocksdb::Cache>,
    /// Writes go to RocksDB's write-ahead log. Without it (exactly-once, where the changelog
    /// topic is the log) a crash loses what was not flushed yet; column families are flushed
    /// atomically, so what survives is a consistent earlier state with its changelog
    /// checkpoint, and restore reads the tail from there (as Kafka Streams does).
    wal: bool,
}

impl Store {
    /// Opens (creating) the store with bounded memory: one LRU block cache of
    /// `block_cache_mb` for every column family, holding data, index and filter blocks, with
    /// the memtables (`write_buffer_mb` in all) charged to it.
    pub fn open(
        dir: &Path,
        block_cache_mb: u64,
        write_buffer_mb: u64,
    ) -> Result<Store, StateError> {
        Store::open_with(dir, block_cache_mb, write_buffer_mb, true)
    }

    /// [`Store::open`], with or without the write-ahead log (`wal`; see [`Store`]).
    pub fn open_with(
        dir: &Path,
        block_cache_mb: u64,
        write_buffer_mb: u64,
        wal: bool,
    ) -> Result<Store, StateError> {
        const MIB: usize = 1 << 20;
        let cache = rocksdb::Cache::new_lru_cache(block_cache_mb as usize * MIB);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_bloom_filter(10.0, false);
        let buffers = write_buffer_mb as usize * MIB;
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_block_based_table_factory(&table);
        // Per column family; the manager caps them all together.
        opts.set_write_buffer_size((buffers / CFS.len()).max(MIB));
        opts.set_max_write_buffer_number(2);
        opts.set_atomic_flush(true);
        // Most reads of a new business key find nothing: a bloom filter in the memtables too
        // answers those without a skiplist search.
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.05);
        opts.set_write_buffer_manager(
            &rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
                buffers,
                false,
                cache.clone(),
            ),
        );
        let db = rocksdb::DB::open_cf(&opts, dir, CFS).map_err(|source| StateError::Open {
            dir: dir.display().to_string(),
            source,
        })?;
        Ok(Store {
            db,
            cache: Some(cache),
            wal,
        })
    }

    /// Opens a stopped instance's state directory for reading only (`sightline state`).
    pub fn open_read_only(dir: &Path) -> Result<Store, StateError> {
        let opts = rocksdb::Options::default();
        let db = rocksdb::DB::open_cf_for_read_only(&opts, dir, CFS, false).map_err(|source| {
            StateError::Open {
                dir: dir.display().to_string(),
                source,
            }
        })?;
        Ok(Store {
            db,
            cache: None,
            wal: true,
        })
    }

    /// Where the store's memory is, in bytes: (block cache in use, of it pinned, memtables,
    /// table readers' index and filter blocks outside the cache).
    pub fn memory(&self) -> [(&'static str, u64); 4] {
        let prop = |name: &str| {
            CFS.iter()
                .filter_map(|cf| {
                    self.db
                        .property_int_value_cf(self.cf(cf), name)
                        .ok()
                        .flatten()
                })
                .sum::<u64>()
        };
        let (used, pinned) = self.cache.as_ref().map_or((0, 0), |c| {
            (c.get_usage() as u64, c.get_pinned_usage() as u64)
        });
        [
            ("block_cache", used),
            ("block_cache_pinned", pinned),
            ("memtables", prop("rocksdb.cur-size-all-mem-tables")),
            ("table_readers", prop("rocksdb.estimate-table-readers-mem")),
        ]
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.db.get_cf(self.cf(cf), key)?)
    }

    /// Writes all pairs atomically.
    pub fn put_all(&self, cf: &str, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StateError> {
        let mut batch = rocksdb::WriteBatch::default();
        let handle = self.cf(cf);
        for (k, v) in pairs {
            batch.put_cf(handle, k, v);
        }
        Ok(self.db.write_opt(batch, &self.write_options())?)
    }

    /// Applies puts and deletes across column families atomically.
    pub fn write(&self, ops: &[Op]) -> Result<(), StateError> {
        let mut batch = rocksdb::WriteBatch::default();
        for op in ops {
            match op {
                Op::Put(cf, k, v) => batch.put_cf(self.cf(cf), k, v),
                Op::Delete(cf, k) => batch.delete_cf(self.cf(cf), k),
            }
        }
        Ok(self.db.write_opt(batch, &self.write_options())?)
    }

    fn write_options(&self) -> rocksdb::WriteOptions {
        let mut o = rocksdb::WriteOptions::default();
        o.disable_wal(!self.wal);
        o
    }

    /// Flushes the memtables to disk (on shutdown: without the write-ahead log, what is not
    /// flushed would be restored from the changelog on the next start).
    pub fn flush(&self) -> Result<(), StateError> {
        let cfs: Vec<_> = CFS.iter().map(|c| self.cf(c)).collect();
        Ok(self
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?)
    }

    /// Pairs with `from <= key < to`, in key order, at most `limit`.
    pub fn range(
        &self,
        cf: &str,
        from: &[u8],
        to: &[u8],
        limit: usize,
    ) -> Result<Pairs, StateError> {
        let mut opts = rocksdb::ReadOptions::default();
        opts.set_iterate_upper_bound(to.to_vec());
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(
            self.cf(cf),
            opts,
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
        ) {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every pair whose key starts with `prefix`, in key order.
    pub fn scan_prefix(&self, cf: &str, prefix: &[u8]) -> Result<Pairs, StateError> {
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(cf),
            rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}
