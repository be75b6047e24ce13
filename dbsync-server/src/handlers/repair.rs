//! `repair`: the server's full state, one page at a time.

use super::rows::with_references;
use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::{SyncServer, mark_seen, scalar, stamp_pending};
use dbsync::messages::{RepairCursor, RepairRequest, RepairResponse, Rows, SignedRequest};
use sea_orm::TransactionTrait;

/// Rows per page when the node does not say.
const DEFAULT_PAGE: u32 = 2_000;

impl SyncServer {
    /// One page of every pulled table's rows, tables parents first and rows in key order,
    /// with the rows they reference. The first page fixes the snapshot's version: pulling
    /// from it afterwards brings whatever changed while the pages were read.
    #[tracing::instrument(name = "dbsync.repair", skip_all, fields(node_id = request.node_id))]
    pub async fn handle_repair(
        &self,
        request: &SignedRequest,
    ) -> Result<RepairResponse, ServerError> {
        let repair: RepairRequest = self
            .authenticate(Procedure::Repair, request, |r: &RepairRequest| &r.meta)
            .await?;
        stamp_pending(self.db()).await?;
        let tables: Vec<&dbsync::TableInfo> = self.inner.registry.pulled().collect();
        let txn = self.db().begin().await?;
        let snapshot_version = match repair.snapshot_version {
            Some(v) => v,
            None => scalar(
                &txn,
                "SELECT latest_version FROM dbsync_server_state WHERE id = 1",
                vec![],
            )
            .await?
            .unwrap_or(0),
        };
        let page = repair
            .page_size
            .unwrap_or(DEFAULT_PAGE)
            .clamp(1, self.inner.config.max_page_size);
        let (index, after_id) = match &repair.after {
            None => (0, 0),
            Some(cursor) => {
                let index = tables
                    .iter()
                    .position(|t| t.name == cursor.table)
                    .ok_or_else(|| {
                        ServerError::InvalidOperation(format!("unknown table `{}`", cursor.table))
                    })?;
                (index, cursor.after_id)
            }
        };
        let mut rows = Rows::new();
        let mut next = None;
        let walked = tables.get(index).map(|t| t.name.clone());
        if let Some(info) = tables.get(index) {
            let found = info.ops().page(&txn, after_id, u64::from(page)).await?;
            let last = found
                .last()
                .and_then(|r| r.get(&info.primary_key)?.as_i64());
            next = match (found.len() == page as usize, last) {
                (true, Some(last)) => Some(RepairCursor {
                    table: info.name.clone(),
                    after_id: last,
                }),
                _ => tables.get(index + 1).map(|t| RepairCursor {
                    table: t.name.clone(),
                    after_id: 0,
                }),
            };
            rows.insert(info.name.clone(), found);
        }
        let rows = with_references(&txn, self.inner.registry, rows, snapshot_version).await?;
        txn.commit().await?;
        // An unsigned read (from a server that allows them) may come from anyone: it does
        // not move the node's trimming horizon.
        if next.is_none() && !request.signature.is_empty() {
            mark_seen(self.db(), repair.meta.node_id, snapshot_version).await?;
        }
        Ok(RepairResponse {
            snapshot_version,
            rows,
            next,
            table: walked,
        })
    }
}
