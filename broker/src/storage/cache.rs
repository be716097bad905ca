//! Bounded cache of segment blocks. Segment reads are turned into block-aligned ranged
//! GETs so concurrent readers of the same region share one request's result and the
//! cache's byte budget bounds read memory.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

use super::error::Result;
use super::object::Store;
use crate::metrics::Metrics;

pub const BLOCK_SIZE: u64 = 1024 * 1024;

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<(String, u64), Bytes> for ByteWeighter {
    fn weight(&self, _key: &(String, u64), value: &Bytes) -> u64 {
        value.len().max(1) as u64
    }
}

pub struct BlockCache {
    store: Store,
    blocks: Cache<(String, u64), Bytes, ByteWeighter>,
    metrics: Arc<Metrics>,
}

impl BlockCache {
    pub fn new(store: Store, capacity_bytes: u64, metrics: Arc<Metrics>) -> Self {
        let estimated_items = (capacity_bytes / BLOCK_SIZE).max(16) as usize;
        BlockCache {
            store,
            blocks: Cache::with_weighter(
                estimated_items,
                capacity_bytes.max(BLOCK_SIZE),
                ByteWeighter,
            ),
            metrics,
        }
    }

    /// Bytes held (never more than the capacity).
    pub fn weight(&self) -> u64 {
        self.blocks.weight()
    }

    async fn block(&self, path: &Path, object_len: u64, block: u64) -> Result<Bytes> {
        let key = (path.to_string(), block);
        if let Some(hit) = self.blocks.get(&key) {
            self.metrics.cache_hits.inc();
            return Ok(hit);
        }
        self.metrics.cache_misses.inc();
        let guard = match self.blocks.get_value_or_guard_async(&key).await {
            Ok(hit) => return Ok(hit),
            Err(guard) => guard,
        };
        let start = block * BLOCK_SIZE;
        let end = (start + BLOCK_SIZE).min(object_len);
        let data = self.store.get_range(path, start..end).await?;
        let _ = guard.insert(data.clone());
        Ok(data)
    }

    /// Reads `range` of an object of `object_len` bytes through the cache.
    pub async fn read(&self, path: &Path, object_len: u64, range: Range<u64>) -> Result<Bytes> {
        let range = range.start.min(object_len)..range.end.min(object_len);
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let first = range.start / BLOCK_SIZE;
        let last = (range.end - 1) / BLOCK_SIZE;
        if first == last {
            let b = self.block(path, object_len, first).await?;
            let base = first * BLOCK_SIZE;
            return Ok(b.slice((range.start - base) as usize..(range.end - base) as usize));
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for block in first..=last {
            let b = self.block(path, object_len, block).await?;
            let base = block * BLOCK_SIZE;
            let from = range.start.saturating_sub(base) as usize;
            let to = ((range.end - base) as usize).min(b.len());
            out.extend_from_slice(&b[from..to]);
        }
        Ok(out.freeze())
    }

    /// Forgets an object's blocks (after it was deleted).
    pub fn evict(&self, path: &Path, object_len: u64) {
        let key = path.to_string();
        for block in 0..object_len.div_ceil(BLOCK_SIZE) {
            self.blocks.remove(&(key.clone(), block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_across_blocks_and_counts_hits() {
        let metrics = Arc::new(Metrics::new());
        let store = Store::from_url("memory://", metrics.clone()).unwrap();
        let data: Vec<u8> = (0..(3 * BLOCK_SIZE + 10))
            .map(|i| (i % 251) as u8)
            .collect();
        let path = Path::from("log/x/0/00000000000000000000");
        store.put(&path, Bytes::from(data.clone())).await.unwrap();
        let cache = BlockCache::new(store, 8 * BLOCK_SIZE, metrics.clone());
        let len = data.len() as u64;
        let r = BLOCK_SIZE - 5..2 * BLOCK_SIZE + 7;
        let got = cache.read(&path, len, r.clone()).await.unwrap();
        assert_eq!(&got[..], &data[r.start as usize..r.end as usize]);
        let got = cache
            .read(&path, len, 3 * BLOCK_SIZE..len + 100)
            .await
            .unwrap();
        assert_eq!(&got[..], &data[3 * BLOCK_SIZE as usize..]);
        assert_eq!(metrics.cache_misses.get(), 4);
        cache.read(&path, len, 0..10).await.unwrap();
        assert_eq!(metrics.cache_hits.get(), 1);
    }
}
