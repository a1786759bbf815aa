//! Per-table work cached by table map: Extract's filter verdicts and
//! Transform's route and column mappings.
//!
//! The decoder hands out one `Arc<TableSchema>` per table map and keeps it
//! while the table is unchanged, so the address of that `Arc` is a cheap
//! key (no name to build or hash per row). Each entry holds its `Arc`, so
//! the address cannot be freed and reused by another table while the entry
//! lives; a new map of the same table (after a DDL) is a new key and is
//! judged again. Past [`TableCache::LIMIT`] entries (tables altered many
//! times) the cache starts over.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_core::TableSchema;

/// Values of type `V` per table map.
pub(crate) struct TableCache<V> {
    entries: HashMap<usize, (Arc<TableSchema>, V)>,
}

impl<V> Default for TableCache<V> {
    fn default() -> Self {
        TableCache {
            entries: HashMap::new(),
        }
    }
}

impl<V> TableCache<V> {
    /// Entries beyond which the cache is cleared.
    pub(crate) const LIMIT: usize = 4096;

    /// `table`'s value, made by `make` the first time this map is seen.
    pub(crate) fn get_or_try_insert<E>(
        &mut self,
        table: &Arc<TableSchema>,
        make: impl FnOnce(&Arc<TableSchema>) -> Result<V, E>,
    ) -> Result<&V, E> {
        let key = Arc::as_ptr(table) as usize;
        if !self.entries.contains_key(&key) {
            if self.entries.len() >= Self::LIMIT {
                self.entries.clear();
            }
            let value = make(table)?;
            self.entries.insert(key, (Arc::clone(table), value));
        }
        Ok(&self.entries[&key].1)
    }

    /// As [`Self::get_or_try_insert`], for work that cannot fail.
    pub(crate) fn get_or_insert(
        &mut self,
        table: &Arc<TableSchema>,
        make: impl FnOnce(&Arc<TableSchema>) -> V,
    ) -> &V {
        match self.get_or_try_insert(table, |t| Ok::<_, std::convert::Infallible>(make(t))) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
