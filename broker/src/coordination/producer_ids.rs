//! Producer ids for idempotent producers, handed out in blocks claimed by
//! compare-and-swap on `meta/producer-ids`, so ids stay unique across brokers and
//! restarts.
//!
//! Each version names its writer after the next free id (`"2000 3/7"`: node 3,
//! incarnation 7). Two brokers claiming the same block would otherwise write the same
//! bytes, and a claim retried after an ambiguous error recognises its own write by its
//! content: both would take the block and hand out the same ids.

use std::ops::Range;

use bytes::Bytes;
use object_store::path::Path;
use tokio::sync::Mutex;

use crate::storage::error::{Result, StorageError};
use crate::storage::versioned::{self, VersionedObject};
use crate::storage::Store;

const BLOCK: i64 = 1000;

pub struct ProducerIdAllocator {
    object: VersionedObject,
    block: Mutex<Range<i64>>,
    /// Who claims blocks (`node/incarnation`), written into every version.
    owner: String,
}

impl ProducerIdAllocator {
    pub fn new(store: Store, owner: String) -> Self {
        ProducerIdAllocator {
            object: VersionedObject::new(store, Path::from("meta/producer-ids")),
            block: Mutex::new(0..0),
            owner,
        }
    }

    pub async fn next(&self) -> Result<i64> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            let start = versioned::update(
                &self.object,
                |d| match d {
                    None => Ok(0i64),
                    // The next free id, then (since the writer is named) its writer.
                    Some(b) => String::from_utf8_lossy(&b)
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| StorageError::corrupt("meta/producer-ids", e)),
                },
                |next| Bytes::from(format!("{next} {}", self.owner)),
                |next| {
                    let start = *next;
                    *next += BLOCK;
                    Ok::<_, StorageError>(start)
                },
            )
            .await?
            .2;
            *block = start..start + BLOCK;
        }
        let id = block.start;
        block.start += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::sync::Arc;

    #[tokio::test]
    async fn two_allocators_never_hand_out_the_same_id() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let a = ProducerIdAllocator::new(store.clone(), "1/1".into());
        let b = ProducerIdAllocator::new(store, "2/1".into());
        let x = a.next().await.unwrap();
        let y = b.next().await.unwrap();
        assert_ne!(x, y);
        assert_eq!(a.next().await.unwrap(), x + 1);
    }

    /// Found by the simulation (seed 14): two brokers claimed the first block at once;
    /// the loser's put was throttled, retried, found the winner's identical bytes and
    /// took them for its own write, so both handed out the same producer ids.
    #[tokio::test]
    async fn a_retried_claim_does_not_take_another_brokers_block() {
        let store = Store::from_url("memory://", Arc::new(Metrics::new())).unwrap();
        let a = ProducerIdAllocator::new(store.clone(), "1/1".into());
        let b = ProducerIdAllocator::new(store.clone(), "2/1".into());
        assert_eq!(a.next().await.unwrap(), 0);
        // b's claim of version 1 failed ambiguously and is retried: the object there is
        // a's, with the same next id, so it must not count as b's.
        let mine = Bytes::from(format!("{BLOCK} 2/1"));
        let key = Path::from(format!("meta/producer-ids/{:020}", 1));
        assert_eq!(
            store.put_if_absent_again(&key, mine).await.unwrap(),
            crate::storage::object::Created::AlreadyExists
        );
        assert_eq!(b.next().await.unwrap(), BLOCK, "b claims the next block");
    }
}
