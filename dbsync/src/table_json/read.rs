//! Reading rows as the JSON text the database builds: by key, by page, and the rows
//! holding unique values.

use super::JsonTable;
use crate::capture::quote;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::rows_text::Kind;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use serde_json::Value as Json;

impl JsonTable {
    /// The rows with these keys, in no particular order.
    pub(crate) async fn fetch(&self, db: &DatabaseTransaction, ids: &[i64]) -> Result<Vec<Row>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.decode(&self.fetch_text(db, ids, &[]).await?.rows.json)
    }

    /// The rows whose `column` holds one of `values`; `None` when `column` is not one of the
    /// table's.
    pub(crate) async fn holders(
        &self,
        db: &DatabaseTransaction,
        column: &str,
        values: &[Json],
    ) -> Result<Option<Vec<Row>>> {
        let Some((name, kind)) = self.columns.iter().find(|(name, _)| name == column) else {
            return Ok(None);
        };
        let wanted: Vec<&Json> = values.iter().filter(|v| !v.is_null()).collect();
        if wanted.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let text =
            serde_json::to_string(&wanted).map_err(|e| Error::InvalidOperation(e.to_string()))?;
        let filter = match (self.backend, kind) {
            (DbBackend::Postgres, Kind::Int { .. }) => format!(
                "{} IN (SELECT value::int8 FROM json_array_elements_text($1::json))",
                quote(name)
            ),
            (DbBackend::Postgres, Kind::Text) => format!(
                "{} IN (SELECT value FROM json_array_elements_text($1::json))",
                quote(name)
            ),
            _ => format!("{} IN (SELECT value FROM json_each(?))", quote(name)),
        };
        let sql = self.select(&filter, "");
        Ok(Some(self.read(db, sql, vec![text.into()]).await?))
    }

    /// Up to `limit` rows with a key above `after`, in key order.
    pub(crate) async fn page(
        &self,
        db: &DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> Result<Vec<Row>> {
        let pk = quote(&self.primary_key);
        let (filter, tail) = match self.backend {
            DbBackend::Postgres => (format!("{pk} > $1"), format!("ORDER BY {pk} LIMIT $2")),
            _ => (format!("{pk} > ?"), format!("ORDER BY {pk} LIMIT ?")),
        };
        let sql = self.select(&filter, &tail);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = self.read(db, sql, vec![after.into(), limit.into()]).await?;
        // Aggregates over an ordered subquery keep its order in practice, not by contract.
        let pk = &self.primary_key;
        rows.sort_by_key(|row| row.get(pk).and_then(Json::as_i64));
        Ok(rows)
    }

    /// The rows with these keys as the JSON text the database built, with the distinct
    /// values each of the columns `references` holds among them (the keys of the parents a
    /// node needs first). The keys travel as ranges of consecutive keys: small parameters
    /// for a batch of new rows, so PostgreSQL over TCP does not hold a large statement
    /// back.
    pub(crate) async fn fetch_text(
        &self,
        db: &DatabaseTransaction,
        ids: &[i64],
        references: &[String],
    ) -> Result<FetchedRows> {
        let table = quote(&self.table);
        let pk = quote(&self.primary_key);
        let qualified = self
            .columns
            .iter()
            .map(|(name, _)| format!("{table}.{}", quote(name)))
            .collect::<Vec<_>>()
            .join(", ");
        let ranges = key_ranges(ids);
        // Where the rows start in the answer, and where each reference's keys are.
        let (sql, values, rows_at, parents_at) = match self.backend {
            DbBackend::Postgres => {
                // Two arrays rather than one JSON parameter: PostgreSQL plans a join on
                // `unnest` with a bitmap scan, a page at a time, and one on
                // `json_array_elements` with a scan fetching row by row (2 ms more for
                // 9,000 rows). The parents are read from the rows' own columns below.
                let bounds = |end: usize| {
                    let list: Vec<String> = ranges.iter().map(|r| r[end].to_string()).collect();
                    Value::from(format!("{{{}}}", list.join(",")))
                };
                (
                    format!(
                        "SELECT count(*), max(t.{pk}), {rows} \
                         FROM (SELECT {qualified} FROM unnest($1::int8[], $2::int8[]) \
                         AS dbsync_keys(lo, hi) JOIN {table} \
                         ON {table}.{pk} BETWEEN dbsync_keys.lo AND dbsync_keys.hi) AS t",
                        rows = self.rows_aggregate()
                    ),
                    vec![bounds(0), bounds(1)],
                    2,
                    // Each reference's own column aggregate, every value in row order.
                    references
                        .iter()
                        .map(|column| {
                            let position = self.columns.iter().position(|(name, _)| name == column);
                            position.map(|p| 2 + p).ok_or_else(|| Error::RowCodec {
                                table: self.table.clone(),
                                column: column.clone(),
                                reason: "not a column of the table".into(),
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                )
            }
            _ => {
                let parents: String = references
                    .iter()
                    .map(|c| format!(", json_group_array(DISTINCT {})", quote(c)))
                    .collect();
                let ranges = serde_json::to_string(&ranges)
                    .map_err(|e| Error::InvalidOperation(e.to_string()))?;
                (
                    format!(
                        "SELECT count(*), max({pk}){parents}, {rows} \
                         FROM (SELECT {qualified} FROM json_each(?) AS dbsync_keys JOIN {table} \
                         ON {table}.{pk} BETWEEN json_extract(dbsync_keys.value, '$[0]') \
                         AND json_extract(dbsync_keys.value, '$[1]'))",
                        rows = self.rows_aggregate()
                    ),
                    vec![ranges.into()],
                    2 + references.len(),
                    (2..2 + references.len()).collect(),
                )
            }
        };
        let row = db
            .query_one_raw(Statement::from_sql_and_values(self.backend, sql, values))
            .await?;
        let Some(row) = row else {
            return Ok(FetchedRows {
                rows: RowsText::default(),
                parents: vec![Vec::new(); references.len()],
            });
        };
        let rows = self.rows_text(&row, rows_at)?;
        let mut parents = Vec::with_capacity(references.len());
        for (column, at) in references.iter().zip(parents_at) {
            let text: Option<String> = row.try_get_by_index(at)?;
            // A value that is no integer (SQLite's loose typing) references no row.
            let keys: Vec<Json> = match text {
                Some(text) => serde_json::from_str(&text).map_err(|e| Error::RowCodec {
                    table: self.table.clone(),
                    column: column.clone(),
                    reason: e.to_string(),
                })?,
                None => Vec::new(),
            };
            let mut keys: Vec<i64> = keys.iter().filter_map(Json::as_i64).collect();
            keys.sort_unstable();
            keys.dedup();
            parents.push(keys);
        }
        Ok(FetchedRows { rows, parents })
    }

    /// Like [`JsonTable::page`], but the rows stay the JSON text the database built: a page
    /// on its way to a node is sent as it is read.
    pub(crate) async fn page_text(
        &self,
        db: &DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> Result<RowsText> {
        let pk = quote(&self.primary_key);
        let columns = self.names();
        let table = quote(&self.table);
        let rows = self.rows_aggregate();
        let sql = match self.backend {
            DbBackend::Postgres => format!(
                "SELECT count(*), max({pk}), {rows} FROM (SELECT {columns} FROM {table} \
                 WHERE {pk} > $1 ORDER BY {pk} LIMIT $2) AS t"
            ),
            _ => format!(
                "SELECT count(*), max({pk}), {rows} FROM \
                 (SELECT {columns} FROM {table} WHERE {pk} > ? ORDER BY {pk} LIMIT ?)"
            ),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                self.backend,
                sql,
                vec![after.into(), limit.into()],
            ))
            .await?;
        match row {
            Some(row) => self.rows_text(&row, 2),
            None => Ok(RowsText::default()),
        }
    }

    fn select(&self, filter: &str, tail: &str) -> String {
        let columns = self.names();
        let inner = format!(
            "SELECT {columns} FROM {} WHERE {filter} {tail}",
            quote(&self.table)
        );
        format!("SELECT {} FROM ({inner}) AS t", self.rows_aggregate())
    }

    async fn read(
        &self,
        db: &DatabaseTransaction,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Vec<Row>> {
        let statement = Statement::from_sql_and_values(self.backend, sql, values);
        let text = match db.query_one_raw(statement).await? {
            Some(row) => self.rows_json_at(&row, 0)?,
            None => None,
        };
        match text {
            Some(text) => self.decode(&text),
            None => Ok(Vec::new()),
        }
    }

    /// The count, largest key and rows of an aggregate, in its first two columns and from
    /// column `rows` on.
    fn rows_text(&self, row: &sea_orm::QueryResult, rows: usize) -> Result<RowsText> {
        let count: i64 = row.try_get_by_index(0)?;
        // `max` of an `int4` key is an `int4` on PostgreSQL.
        let last: Option<i64> = match row.try_get_by_index::<Option<i64>>(1) {
            Ok(last) => last,
            Err(_) => row.try_get_by_index::<Option<i32>>(1)?.map(i64::from),
        };
        Ok(RowsText {
            json: self
                .rows_json_at(row, rows)?
                .unwrap_or_else(|| "[]".to_owned()),
            rows: usize::try_from(count).unwrap_or(0),
            last,
        })
    }

    /// Rows from the JSON array text the database built.
    fn decode(&self, text: &str) -> Result<Vec<Row>> {
        serde_json::from_str(text).map_err(|e| Error::RowCodec {
            table: self.table.clone(),
            column: String::new(),
            reason: e.to_string(),
        })
    }
}

/// A page of rows as the JSON array text the database built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RowsText {
    /// The rows, a JSON array of objects in [`crate::Row`] form.
    pub json: String,
    /// How many rows it holds.
    pub rows: usize,
    /// The largest primary key among them.
    pub last: Option<i64>,
}

/// `ids` as `[first, last]` runs of consecutive keys, each key once.
pub fn key_ranges(ids: &[i64]) -> Vec<[i64; 2]> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<[i64; 2]> = Vec::new();
    for id in sorted {
        match ranges.last_mut() {
            Some(range) if range[1].checked_add(1) == Some(id) => range[1] = id,
            _ => ranges.push([id, id]),
        }
    }
    ranges
}

/// Rows fetched by key as the JSON text the database built, with the parents they need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedRows {
    /// The rows.
    pub rows: RowsText,
    /// For each column asked about, the distinct keys it holds among the rows.
    pub parents: Vec<Vec<i64>>,
}

#[cfg(test)]
mod tests {
    use super::key_ranges;

    #[test]
    fn keys_travel_as_runs_of_consecutive_keys() {
        assert_eq!(key_ranges(&[]), Vec::<[i64; 2]>::new());
        assert_eq!(
            key_ranges(&[5, 3, 4, 9, 4, 1, i64::MAX, i64::MAX - 1]),
            [[1, 1], [3, 5], [9, 9], [i64::MAX - 1, i64::MAX]]
        );
    }
}
