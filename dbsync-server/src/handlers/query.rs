//! `query`: server rows of one table by column equality.

use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::SyncServer;
use dbsync::messages::{QueryRequest, QueryResponse, SignedRequest};
use sea_orm::TransactionTrait;

impl SyncServer {
    /// The rows of a pulled table whose columns equal the request's filters, at most
    /// [`ServerConfig::max_query_rows`](crate::ServerConfig::max_query_rows) of them.
    #[tracing::instrument(name = "dbsync.query", skip_all, fields(node_id = request.node_id))]
    pub async fn handle_query(
        &self,
        request: &SignedRequest,
    ) -> Result<QueryResponse, ServerError> {
        let query: QueryRequest = self
            .authenticate(Procedure::Query, request, |q: &QueryRequest| &q.meta)
            .await?;
        let info = self
            .inner
            .registry
            .table(&query.table)
            .filter(|t| t.direction.pulls())
            .ok_or_else(|| {
                ServerError::InvalidOperation(format!("unknown table `{}`", query.table))
            })?;
        let limit = self.inner.config.max_query_rows;
        let txn = self.db().begin().await?;
        let mut rows = info
            .ops()
            .query(&txn, &query.filters, u64::from(limit) + 1)
            .await?;
        txn.commit().await?;
        let truncated = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(QueryResponse { rows, truncated })
    }
}
