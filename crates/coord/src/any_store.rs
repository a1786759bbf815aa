//! [`AnyPositionStore`]: the position store a pipeline's `coordination:`
//! section chose, etcd or a local directory (see [`crate::store`] for why it
//! is an enum and not a trait object).

use sluice_core::Position;

use crate::error::CoordError;
use crate::etcd::EtcdPositionStore;
use crate::local::LocalPositionStore;
use crate::record::{Fence, StoredPosition};
use crate::store::PositionStore;

/// The store a pipeline's `coordination:` section chose.
#[derive(Debug, Clone)]
pub enum AnyPositionStore {
    Etcd(EtcdPositionStore),
    Local(LocalPositionStore),
}

impl From<EtcdPositionStore> for AnyPositionStore {
    fn from(store: EtcdPositionStore) -> Self {
        AnyPositionStore::Etcd(store)
    }
}

impl From<LocalPositionStore> for AnyPositionStore {
    fn from(store: LocalPositionStore) -> Self {
        AnyPositionStore::Local(store)
    }
}

impl AnyPositionStore {
    /// The forced position changes, oldest first.
    pub async fn history(&self) -> Result<Vec<crate::HistoryEntry>, CoordError> {
        match self {
            AnyPositionStore::Etcd(s) => s.history().await,
            AnyPositionStore::Local(s) => s.history().await,
        }
    }
}

impl PositionStore for AnyPositionStore {
    async fn load(&self) -> Result<Option<StoredPosition>, CoordError> {
        match self {
            AnyPositionStore::Etcd(s) => s.load().await,
            AnyPositionStore::Local(s) => s.load().await,
        }
    }

    async fn store(&self, record: &StoredPosition, fence: &Fence) -> Result<(), CoordError> {
        match self {
            AnyPositionStore::Etcd(s) => s.store(record, fence).await,
            AnyPositionStore::Local(s) => s.store(record, fence).await,
        }
    }

    async fn force_store(
        &self,
        position: Position,
        changed_by: &str,
    ) -> Result<StoredPosition, CoordError> {
        match self {
            AnyPositionStore::Etcd(s) => s.force_store(position, changed_by).await,
            AnyPositionStore::Local(s) => s.force_store(position, changed_by).await,
        }
    }

    fn location(&self) -> String {
        match self {
            AnyPositionStore::Etcd(s) => s.location(),
            AnyPositionStore::Local(s) => s.location(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn any_store_delegates() {
        let root = tempfile::tempdir().expect("tempdir");
        let local = LocalPositionStore::open(root.path()).expect("open");
        let any = AnyPositionStore::from(local.clone());
        assert_eq!(any.location(), local.location());
        let record = StoredPosition::new(Position::new("f.000001", 4), 1, "n", &Fence::None);
        any.store(&record, &Fence::None).await.expect("store");
        assert_eq!(any.load().await.expect("load"), Some(record));
        let forced = any
            .force_store(Position::new("f.000001", 8), "op")
            .await
            .expect("force");
        assert_eq!(
            Arc::new(any.clone()).load().await.expect("load"),
            Some(forced)
        );
        assert_eq!(any.history().await.expect("history").len(), 1);
    }
}
