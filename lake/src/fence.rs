//! A catalog that refuses to rebase a commit. iceberg-rust's `Transaction::commit`
//! re-reads the table and, when it moved, re-applies our append on top of the newer
//! snapshot. Our snapshot summary says where every partition stands, computed against
//! the snapshot we read; re-applied elsewhere it would be wrong, and the records another
//! writer added meanwhile could land twice. So the transaction goes through this wrapper,
//! whose `load_table` fails (not retryable) unless the table's current snapshot is still
//! the one the commit was built on. Together with the `RefSnapshotIdMatch` requirement
//! the append sends, which the catalog checks atomically, a commit lands only on its own
//! parent; the writer then re-reads the table and decides again (`commit.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use iceberg::table::Table;
use iceberg::{
    Catalog, Error, ErrorKind, Namespace, NamespaceIdent, Result, TableCommit, TableCreation,
    TableIdent,
};

#[derive(Debug)]
pub struct FencedCatalog {
    pub inner: Arc<dyn Catalog>,
    /// The current snapshot the commit was built on (None: the table had none).
    pub parent: Option<i64>,
}

/// The error `load_table` answers when the table moved; `commit.rs` recognises it.
pub const MOVED: &str = "table moved since the commit was built";

#[async_trait]
impl Catalog for FencedCatalog {
    async fn load_table(&self, table: &TableIdent) -> Result<Table> {
        let t = self.inner.load_table(table).await?;
        let current = t.metadata().current_snapshot_id();
        if current != self.parent {
            return Err(Error::new(
                ErrorKind::CatalogCommitConflicts,
                format!("{MOVED}: parent {:?}, now {current:?}", self.parent),
            )
            .with_retryable(false));
        }
        Ok(t)
    }

    async fn update_table(&self, commit: TableCommit) -> Result<Table> {
        self.inner.update_table(commit).await
    }

    async fn list_namespaces(
        &self,
        parent: Option<&NamespaceIdent>,
    ) -> Result<Vec<NamespaceIdent>> {
        self.inner.list_namespaces(parent).await
    }

    async fn create_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<Namespace> {
        self.inner.create_namespace(namespace, properties).await
    }

    async fn get_namespace(&self, namespace: &NamespaceIdent) -> Result<Namespace> {
        self.inner.get_namespace(namespace).await
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        self.inner.namespace_exists(namespace).await
    }

    async fn update_namespace(
        &self,
        namespace: &NamespaceIdent,
        properties: HashMap<String, String>,
    ) -> Result<()> {
        self.inner.update_namespace(namespace, properties).await
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        self.inner.drop_namespace(namespace).await
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        self.inner.list_tables(namespace).await
    }

    async fn create_table(
        &self,
        namespace: &NamespaceIdent,
        creation: TableCreation,
    ) -> Result<Table> {
        self.inner.create_table(namespace, creation).await
    }

    async fn drop_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.drop_table(table).await
    }

    async fn purge_table(&self, table: &TableIdent) -> Result<()> {
        self.inner.purge_table(table).await
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        self.inner.table_exists(table).await
    }

    async fn rename_table(&self, src: &TableIdent, dest: &TableIdent) -> Result<()> {
        self.inner.rename_table(src, dest).await
    }

    async fn register_table(&self, table: &TableIdent, metadata_location: String) -> Result<Table> {
        self.inner.register_table(table, metadata_location).await
    }
}
