//! Producer ids for idempotent producers, handed out in blocks claimed by
//! compare-and-swap on `meta/producer-ids`, so ids stay unique across brokers and
//! restarts.

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
}

impl ProducerIdAllocator {
    pub fn new(store: Store) -> Self {
        ProducerIdAllocator {
            object: VersionedObject::new(store, Path::from("meta/producer-ids")),
            block: Mutex::new(0..0),
        }
    }

    pub async fn next(&self) -> Result<i64> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            let start = versioned::update(
                &self.object,
                |d| match d {
                    None => Ok(0i64),
                    Some(b) => String::from_utf8_lossy(&b)
                        .parse()
                        .map_err(|e| StorageError::corrupt("meta/producer-ids", e)),
                },
                |next| Bytes::from(next.to_string()),
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
        let a = ProducerIdAllocator::new(store.clone());
        let b = ProducerIdAllocator::new(store);
        let x = a.next().await.unwrap();
        let y = b.next().await.unwrap();
        assert_ne!(x, y);
        assert_eq!(a.next().await.unwrap(), x + 1);
    }
}
