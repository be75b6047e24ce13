//! `repair`: the server's full state, one page at a time.

use super::rows::{changed_after, with_references};
use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::{SyncServer, as_bigint, counters, mark_read, quote, scalar, stamp_pending};
use dbsync::messages::{RepairCursor, RepairRequest, RepairResponse, Rows, SignedRequest};
use dbsync::{Row, TableInfo};
use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Rows per page when the node does not say.
const DEFAULT_PAGE: u32 = 2_000;

/// A repair page as it is sent: [`RepairResponse`]'s shape, with each table's rows either as
/// the JSON text the database built or decoded.
#[derive(Serialize)]
pub(crate) struct RepairAnswer {
    snapshot_version: i64,
    rows: BTreeMap<String, PageRows>,
    next: Option<RepairCursor>,
    table: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ahead: Vec<RepairCursor>,
}

/// Cursors a page gives beyond its `next`, so that a node can ask for the next pages at
/// once: a page read on PostgreSQL is mostly the database's work, and two at a time use
/// both cores of a small server. Nodes ask in pairs, so one cursor ahead is enough; each
/// costs an index walk over a page of keys.
const AHEAD: usize = 1;

/// One table's rows of a page.
#[derive(Serialize)]
#[serde(untagged)]
enum PageRows {
    /// A JSON array of rows, sent as it is.
    Text(Box<RawValue>),
    /// Decoded rows.
    Rows(Vec<Row>),
}

impl SyncServer {
    /// One page of every pulled table's rows, tables parents first and rows in key order,
    /// with the rows they reference. The first page fixes the snapshot's version: pulling
    /// from it afterwards brings whatever changed while the pages were read.
    pub async fn handle_repair(
        &self,
        request: &SignedRequest,
    ) -> Result<RepairResponse, ServerError> {
        let answer = self.repair_answer(request).await?;
        let mut rows = Rows::new();
        for (table, list) in answer.rows {
            let list = match list {
                PageRows::Rows(list) => list,
                PageRows::Text(text) => serde_json::from_str(text.get())
                    .map_err(|e| ServerError::Internal(e.to_string()))?,
            };
            rows.insert(table, list);
        }
        Ok(RepairResponse {
            snapshot_version: answer.snapshot_version,
            rows,
            next: answer.next,
            table: answer.table,
            ahead: answer.ahead,
        })
    }

    /// [`SyncServer::handle_repair`] without decoding the rows the database encoded itself,
    /// as the adapters send it.
    #[tracing::instrument(name = "dbsync.repair", skip_all, fields(node_id = request.node_id))]
    pub(crate) async fn repair_answer(
        &self,
        request: &SignedRequest,
    ) -> Result<RepairAnswer, ServerError> {
        let repair: RepairRequest = self
            .authenticate(Procedure::Repair, request, |r: &RepairRequest| &r.meta)
            .await?;
        stamp_pending(self.db()).await?;
        let tables: Vec<&TableInfo> = self.inner.registry.pulled().collect();
        let txn = self.db().begin().await?;
        let latest = counters(&txn).await?.latest;
        let snapshot_version = repair.snapshot_version.unwrap_or(latest);
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
        let mut rows = BTreeMap::new();
        let mut next = None;
        let mut ahead = Vec::new();
        let walked = tables.get(index).map(|t| t.name.clone());
        if let Some(info) = tables.get(index) {
            let (count, last, found) = self
                .read_page(&txn, info, after_id, page, snapshot_version, latest)
                .await?;
            next = match (count == page as usize, last) {
                (true, Some(last)) => Some(RepairCursor {
                    table: info.name.clone(),
                    after_id: last,
                }),
                _ => tables.get(index + 1).map(|t| RepairCursor {
                    table: t.name.clone(),
                    after_id: 0,
                }),
            };
            rows = found;
            if let Some(cursor) = next.as_ref().filter(|c| c.table == info.name) {
                ahead = cursors_ahead(&txn, info, cursor.after_id, page).await?;
            }
        }
        txn.commit().await?;
        // An unsigned read (from a server that allows them) may come from anyone: it does
        // not move the node's trimming horizon.
        if next.is_none() && !request.signature.is_empty() {
            mark_read(self.db(), repair.meta.node_id, snapshot_version).await?;
        }
        Ok(RepairAnswer {
            snapshot_version,
            rows,
            next,
            table: walked,
            ahead,
        })
    }

    /// Up to `page` rows of `info` after `after_id` with the rows they reference: their count
    /// and last key, and the rows by table. When nothing changed after the snapshot, no row
    /// references one the node lacks, and the database's own JSON text of the page is sent
    /// as it is.
    async fn read_page(
        &self,
        txn: &DatabaseTransaction,
        info: &TableInfo,
        after_id: i64,
        page: u32,
        snapshot_version: i64,
        latest: i64,
    ) -> Result<(usize, Option<i64>, BTreeMap<String, PageRows>), ServerError> {
        let registry = self.inner.registry;
        let found = match info.ops().page_text(txn, after_id, u64::from(page)).await? {
            Some(text)
                if info.foreign_keys.is_empty()
                    || !changed_after(txn, snapshot_version, latest).await? =>
            {
                let raw = RawValue::from_string(text.json)
                    .map_err(|e| ServerError::Internal(e.to_string()))?;
                let rows = BTreeMap::from([(info.name.clone(), PageRows::Text(raw))]);
                return Ok((text.rows, text.last, rows));
            }
            // Parents changed after the snapshot may have to go with the page.
            Some(text) => serde_json::from_str::<Vec<Row>>(&text.json)
                .map_err(|e| ServerError::Internal(e.to_string()))?,
            None => info.ops().page(txn, after_id, u64::from(page)).await?,
        };
        let count = found.len();
        let last = found
            .iter()
            .filter_map(|r| r.get(&info.primary_key)?.as_i64())
            .max();
        let rows = Rows::from([(info.name.clone(), found)]);
        let rows = with_references(txn, registry, rows, snapshot_version)
            .await?
            .into_iter()
            .map(|(table, list)| (table, PageRows::Rows(list)))
            .collect();
        Ok((count, last, rows))
    }
}

/// The cursors of the [`AHEAD`] pages of `info` after the page that starts after key
/// `after`, as long as they are full: the key each of them ends on.
async fn cursors_ahead(
    txn: &DatabaseTransaction,
    info: &TableInfo,
    mut after: i64,
    page: u32,
) -> Result<Vec<RepairCursor>, ServerError> {
    let backend = txn.get_database_backend();
    let (table, pk) = (
        quote(backend, &info.name),
        quote(backend, &info.primary_key),
    );
    // Ordered by the table's column: a bare name would be the selected cast's, which
    // PostgreSQL sorts the whole table for (90 ms a page at a million rows, against an
    // index walk of a page of keys).
    let sql = format!(
        "SELECT {} FROM {table} WHERE {pk} > $1 ORDER BY {table}.{pk} LIMIT 1 OFFSET $2",
        as_bigint(backend, &pk)
    );
    let mut out = Vec::with_capacity(AHEAD);
    for _ in 0..AHEAD {
        let end: Option<i64> = scalar(
            txn,
            &sql,
            vec![after.into(), i64::from(page.saturating_sub(1)).into()],
        )
        .await?;
        let Some(end) = end else { break };
        out.push(RepairCursor {
            table: info.name.clone(),
            after_id: end,
        });
        after = end;
    }
    Ok(out)
}
