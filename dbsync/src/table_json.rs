//! Rows that the database itself turns into JSON and back, for tables whose columns all hold
//! integers or text on SQLite or PostgreSQL.
//!
//! For such columns the database's own JSON functions give exactly the form [`crate::row`]
//! gives (a number, a string or `null`), so a page of rows can be read as one JSON text
//! (`json_group_array`, `json_agg`). That skips what dominates a sync otherwise: a driver
//! row, a SeaORM model and a `Value` per column and row. Rows are written as multi-row
//! statements of bound values on SQLite (in process, its fastest way in), and from one JSON
//! parameter on PostgreSQL (`json_array_elements`: a statement binding every value is large,
//! and large statements wait on the network). Tables with any other kind of column, and
//! MySQL, keep the model path of [`crate::table_ops`].

use crate::capture::quote;
use crate::error::{Error, Result};
use crate::row::Row;
use crate::rows_text::{Kind, null, row_values};
use crate::select_json::{aggregate_text, is_empty};
use sea_orm::{
    ColumnTrait, ColumnType, ConnectionTrait, DatabaseTransaction, DbBackend, IdenStatic, Iterable,
    Statement, Value,
};
use serde_json::Value as Json;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// What the database's JSON functions need to know of a table: its columns and their kinds.
#[derive(Debug)]
pub(crate) struct Shape {
    table: String,
    primary_key: String,
    columns: Vec<(String, Kind)>,
}

/// A table whose rows the database can encode and decode.
#[derive(Debug)]
pub(crate) struct JsonTable {
    backend: DbBackend,
    shape: Arc<Shape>,
}

impl std::ops::Deref for JsonTable {
    type Target = Shape;

    fn deref(&self) -> &Shape {
        &self.shape
    }
}

impl JsonTable {
    /// The table of entity `E` on `backend`, or `None` when one of its columns needs the model
    /// path or the database lacks the functions (MySQL).
    pub(crate) fn of<E: crate::Tracked + Default>(
        backend: DbBackend,
        primary_key: &str,
    ) -> Option<JsonTable> {
        if !matches!(backend, DbBackend::Sqlite | DbBackend::Postgres) {
            return None;
        }
        Some(JsonTable {
            backend,
            shape: Shape::of::<E>(primary_key)?,
        })
    }
}

impl Shape {
    /// The shape of entity `E`, or `None` when one of its columns needs the model path;
    /// worked out once per entity, as every row operation asks.
    pub(crate) fn of<E: crate::Tracked + Default>(primary_key: &str) -> Option<Arc<Shape>> {
        static SHAPES: OnceLock<RwLock<HashMap<TypeId, Option<Arc<Shape>>>>> = OnceLock::new();
        let shapes = SHAPES.get_or_init(RwLock::default);
        let id = TypeId::of::<E>();
        if let Some(known) = shapes.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return known.clone();
        }
        let built = Shape::build::<E>(primary_key).map(Arc::new);
        shapes
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_insert(built)
            .clone()
    }

    fn build<E: crate::Tracked + Default>(primary_key: &str) -> Option<Shape> {
        let mut columns = Vec::new();
        for (column, template) in E::Column::iter().zip(E::column_templates()) {
            let name = column.as_str();
            // Names go into JSON paths and object keys unescaped.
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            let kind = kind(column.def().get_column_type(), &template)?;
            columns.push((name.to_owned(), kind));
        }
        Some(Shape {
            table: E::default().table_name().to_owned(),
            primary_key: primary_key.to_owned(),
            columns,
        })
    }

    /// The quoted column names, in entity order, as a select or insert lists them.
    fn names(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| quote(name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `'name', "name"` for every column, as `json_object` takes them.
    fn pairs(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| format!("'{name}', {}", quote(name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What [`crate::from_row`] checks: every column present with a value of its kind, and
    /// no other key.
    pub(crate) fn check(&self, row: &Row) -> Result<()> {
        let fail = |column: &str, reason: String| Error::RowCodec {
            table: self.table.clone(),
            column: column.to_owned(),
            reason,
        };
        for (name, kind) in &self.columns {
            let value = row
                .get(name)
                .ok_or_else(|| fail(name, "missing".to_owned()))?;
            let fits = match (kind, value) {
                (_, Json::Null) => true,
                (Kind::Int { min, max }, Json::Number(n)) => {
                    n.as_i64().is_some_and(|i| (*min..=*max).contains(&i))
                }
                (Kind::Text, Json::String(_)) => true,
                _ => false,
            };
            if !fits {
                let expected = match kind {
                    Kind::Int { .. } => "an integer in range",
                    Kind::Text => "a string",
                };
                return Err(fail(name, format!("expected {expected}, got {value}")));
            }
        }
        if row.len() != self.columns.len() {
            let unknown = row
                .keys()
                .find(|key| !self.columns.iter().any(|(name, _)| name == *key))
                .cloned()
                .unwrap_or_default();
            return Err(fail(&unknown, "not a column of this table".to_owned()));
        }
        Ok(())
    }
}

impl JsonTable {
    /// The rows with these keys, in no particular order.
    pub(crate) async fn fetch(&self, db: &DatabaseTransaction, ids: &[i64]) -> Result<Vec<Row>> {
        let pk = quote(&self.primary_key);
        let (Some(&low), Some(&high)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(Vec::new());
        };
        if ids.len() > 64
            && high
                .checked_sub(low)
                .is_some_and(|span| span < 2 * ids.len() as i64)
        {
            // Mostly consecutive keys (a batch of new rows, typically): one range scan with
            // two parameters, keeping the rows asked for. A statement that carries every key
            // is large, and PostgreSQL over TCP makes large statements wait (Nagle's
            // algorithm, which sqlx 0.9 leaves on).
            let filter = match self.backend {
                DbBackend::Postgres => format!("{pk} BETWEEN $1 AND $2"),
                _ => format!("{pk} BETWEEN ? AND ?"),
            };
            let sql = self.select(&filter, "");
            let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
            let mut rows = self.read(db, sql, vec![low.into(), high.into()]).await?;
            let key = &self.primary_key;
            rows.retain(|row| {
                row.get(key)
                    .and_then(Json::as_i64)
                    .is_some_and(|id| wanted.contains(&id))
            });
            return Ok(rows);
        }
        let keys =
            serde_json::to_string(ids).map_err(|e| Error::InvalidOperation(e.to_string()))?;
        let filter = match self.backend {
            DbBackend::Postgres => {
                format!("{pk} IN (SELECT value::int8 FROM json_array_elements_text($1::json))")
            }
            _ => format!("{pk} IN (SELECT value FROM json_each(?))"),
        };
        let sql = self.select(&filter, "");
        self.read(db, sql, vec![keys.into()]).await
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
    /// node needs first). The keys travel as ranges of consecutive keys: one small
    /// parameter for a batch of new rows, so PostgreSQL over TCP does not hold a large
    /// statement back.
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
        let sql = match self.backend {
            DbBackend::Postgres => {
                let parents: String = references
                    .iter()
                    .map(|c| format!(", json_agg(DISTINCT t.{})::text", quote(c)))
                    .collect();
                format!(
                    "SELECT json_agg(t)::text, count(*), max(t.{pk}){parents} FROM \
                     (SELECT {qualified} FROM json_array_elements($1::json) AS dbsync_keys(k) \
                     JOIN {table} ON {table}.{pk} \
                     BETWEEN (dbsync_keys.k->>0)::int8 AND (dbsync_keys.k->>1)::int8) AS t"
                )
            }
            _ => {
                let parents: String = references
                    .iter()
                    .map(|c| format!(", json_group_array(DISTINCT {})", quote(c)))
                    .collect();
                format!(
                    "SELECT json_group_array(json_object({pairs})), count(*), max({pk}){parents} \
                     FROM (SELECT {qualified} FROM json_each(?) AS dbsync_keys JOIN {table} \
                     ON {table}.{pk} BETWEEN json_extract(dbsync_keys.value, '$[0]') \
                     AND json_extract(dbsync_keys.value, '$[1]'))",
                    pairs = self.pairs()
                )
            }
        };
        let ranges = serde_json::to_string(&key_ranges(ids))
            .map_err(|e| Error::InvalidOperation(e.to_string()))?;
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                self.backend,
                sql,
                vec![ranges.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(FetchedRows {
                rows: RowsText::default(),
                parents: vec![Vec::new(); references.len()],
            });
        };
        let rows = rows_text(&row)?;
        let mut parents = Vec::with_capacity(references.len());
        for (index, column) in references.iter().enumerate() {
            let text: Option<String> = row.try_get_by_index(3 + index)?;
            // A value that is no integer (SQLite's loose typing) references no row.
            let keys: Vec<Json> = match text {
                Some(text) => serde_json::from_str(&text).map_err(|e| Error::RowCodec {
                    table: self.table.clone(),
                    column: column.clone(),
                    reason: e.to_string(),
                })?,
                None => Vec::new(),
            };
            parents.push(keys.iter().filter_map(Json::as_i64).collect());
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
        let pairs = self.pairs();
        let table = quote(&self.table);
        let sql = match self.backend {
            DbBackend::Postgres => format!(
                "SELECT json_agg(t)::text, count(*), max({pk}) FROM (SELECT {columns} FROM {table} \
                 WHERE {pk} > $1 ORDER BY {pk} LIMIT $2) AS t"
            ),
            _ => format!(
                "SELECT json_group_array(json_object({pairs})), count(*), max({pk}) FROM \
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
            Some(row) => rows_text(&row),
            None => Ok(RowsText::default()),
        }
    }

    fn select(&self, filter: &str, tail: &str) -> String {
        let pairs = self.pairs();
        let columns = self.names();
        let inner = format!(
            "SELECT {columns} FROM {} WHERE {filter} {tail}",
            quote(&self.table)
        );
        match self.backend {
            // A record's JSON is keyed by its column names, and is built faster than
            // `json_build_object`'s.
            DbBackend::Postgres => format!("SELECT json_agg(t)::text FROM ({inner}) AS t"),
            _ => format!("SELECT json_group_array(json_object({pairs})) FROM ({inner})"),
        }
    }

    async fn read(
        &self,
        db: &DatabaseTransaction,
        sql: String,
        values: Vec<Value>,
    ) -> Result<Vec<Row>> {
        let statement = Statement::from_sql_and_values(self.backend, sql, values);
        let Some(text) = aggregate_text(db, statement).await? else {
            return Ok(Vec::new());
        };
        serde_json::from_str(&text).map_err(|e| Error::RowCodec {
            table: self.table.clone(),
            column: String::new(),
            reason: e.to_string(),
        })
    }

    /// Inserts every row; with `upsert`, a row whose key exists replaces it.
    pub(crate) async fn write(
        &self,
        db: &DatabaseTransaction,
        rows: &[&Row],
        upsert: bool,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        for row in rows {
            self.check(row)?;
        }
        if self.backend == DbBackend::Sqlite {
            let mut values = Vec::with_capacity(rows.len() * self.columns.len());
            for row in rows {
                values.extend(self.columns.iter().map(|(name, kind)| match row.get(name) {
                    Some(Json::Number(n)) => Value::BigInt(n.as_i64()),
                    Some(Json::String(text)) => Value::String(Some(text.clone())),
                    _ => null(*kind),
                }));
            }
            return self.write_values(db, values, upsert).await;
        }
        let sql = self.insert_sql(upsert);
        for chunk in rows.chunks(BATCH) {
            let text =
                serde_json::to_string(chunk).map_err(|e| Error::InvalidOperation(e.to_string()))?;
            db.execute_raw(Statement::from_sql_and_values(
                self.backend,
                sql.clone(),
                vec![text.into()],
            ))
            .await?;
        }
        Ok(())
    }

    /// Writes a snapshot page of this table, given as a JSON array of rows, on SQLite: the
    /// rows are checked as [`JsonTable::check`] would, local rows holding a unique value the
    /// page takes from them get a placeholder (see `apply::vacate_held_values`), and every
    /// row is upserted, all from the text itself. `false` on other databases.
    pub(crate) async fn write_snapshot_text(
        &self,
        db: &DatabaseTransaction,
        json: &str,
        unique: &[Vec<String>],
    ) -> Result<bool> {
        if self.backend != DbBackend::Sqlite {
            return Ok(false);
        }
        let values = row_values(&self.columns, json).map_err(|refusal| Error::RowCodec {
            table: self.table.clone(),
            column: refusal.column,
            reason: refusal.reason,
        })?;
        let (table, pk) = (quote(&self.table), quote(&self.primary_key));
        let key = &self.primary_key;
        // No row can hold a value the page takes in an empty table (a first sync), and
        // looking every value of the page up costs about as much as writing it.
        let unique = if unique.is_empty() || is_empty(db, &table).await? {
            &[]
        } else {
            unique
        };
        for column in unique.iter().flatten() {
            let Some((name, kind)) = self.columns.iter().find(|(name, _)| name == column) else {
                continue;
            };
            let placeholder = match kind {
                Kind::Text => format!("'~dbsync~' || {pk}"),
                Kind::Int { .. } => format!("-1000000000 - {pk}"),
            };
            let col = quote(name);
            // A holder keeps its value when the page gives that very value to that very row.
            let sql = format!(
                "UPDATE {table} SET {col} = {placeholder} WHERE {col} IN \
                 (SELECT value ->> '$.{name}' FROM json_each(?1)) AND NOT EXISTS \
                 (SELECT 1 FROM json_each(?1) AS j WHERE j.value ->> '$.{name}' = {table}.{col} \
                 AND j.value ->> '$.{key}' = {table}.{pk})"
            );
            db.execute_raw(Statement::from_sql_and_values(
                self.backend,
                sql,
                vec![json.into()],
            ))
            .await?;
        }
        self.write_values(db, values, true).await?;
        Ok(true)
    }

    /// Deletes the rows with a key in `(low, high]` that the JSON array of rows `json` does
    /// not hold; `false` on databases other than SQLite.
    pub(crate) async fn delete_absent_text(
        &self,
        db: &DatabaseTransaction,
        json: &str,
        low: i64,
        high: i64,
    ) -> Result<bool> {
        if self.backend != DbBackend::Sqlite {
            return Ok(false);
        }
        let (table, pk, key) = (
            quote(&self.table),
            quote(&self.primary_key),
            &self.primary_key,
        );
        let sql = format!(
            "DELETE FROM {table} WHERE {pk} > ? AND {pk} <= ? \
             AND {pk} NOT IN (SELECT value ->> '$.{key}' FROM json_each(?))"
        );
        db.execute_raw(Statement::from_sql_and_values(
            self.backend,
            sql,
            vec![low.into(), high.into(), json.into()],
        ))
        .await?;
        Ok(true)
    }

    /// Inserts rows given as their values in column order, one row after the other, as
    /// multi-row statements with bound values: on SQLite, twice as fast as reading the rows
    /// out of JSON text (PostgreSQL gets the text: see [`JsonTable::insert_sql`]).
    async fn write_values(
        &self,
        db: &DatabaseTransaction,
        values: Vec<Value>,
        upsert: bool,
    ) -> Result<()> {
        let width = self.columns.len().max(1);
        let per_statement = BOUND_ROWS.min(MAX_PARAMETERS / width).max(1);
        let full = self.bound_insert_sql(per_statement, upsert);
        let mut values = values.into_iter().peekable();
        while values.peek().is_some() {
            let chunk: Vec<Value> = values.by_ref().take(per_statement * width).collect();
            let rows = chunk.len() / width;
            let sql = if rows == per_statement {
                full.clone()
            } else {
                self.bound_insert_sql(rows, upsert)
            };
            db.execute_raw(Statement::from_sql_and_values(self.backend, sql, chunk))
                .await?;
        }
        Ok(())
    }

    fn bound_insert_sql(&self, rows: usize, upsert: bool) -> String {
        let one = format!("({})", vec!["?"; self.columns.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES ",
            quote(&self.table),
            self.names()
        );
        sql.reserve(rows * (one.len() + 2));
        for i in 0..rows {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&one);
        }
        sql.push_str(&self.conflict(upsert));
        sql
    }

    /// The `ON CONFLICT` clause of an upsert, empty for an insert.
    fn conflict(&self, upsert: bool) -> String {
        if upsert {
            let others: Vec<String> = self
                .columns
                .iter()
                .filter(|(name, _)| *name != self.primary_key)
                .map(|(name, _)| format!("{0} = excluded.{0}", quote(name)))
                .collect();
            if others.is_empty() {
                format!(" ON CONFLICT ({}) DO NOTHING", quote(&self.primary_key))
            } else {
                format!(
                    " ON CONFLICT ({}) DO UPDATE SET {}",
                    quote(&self.primary_key),
                    others.join(", ")
                )
            }
        } else {
            String::new()
        }
    }

    /// PostgreSQL's `INSERT ... SELECT` of every row of a JSON array bound as the only
    /// parameter; with `upsert`, a row whose key exists replaces it.
    fn insert_sql(&self, upsert: bool) -> String {
        let fields = self
            .columns
            .iter()
            .map(|(name, kind)| match kind {
                Kind::Int { .. } => format!("(r ->> '{name}')::int8"),
                Kind::Text => format!("r ->> '{name}'"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({}) SELECT {fields} FROM json_array_elements($1::json) AS r{}",
            quote(&self.table),
            self.names(),
            self.conflict(upsert)
        )
    }
}

/// A page of rows as the JSON array text the database built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RowsText {
    /// The rows, a JSON array of objects in row form (see [`crate::row`]).
    pub json: String,
    /// How many rows it holds.
    pub rows: usize,
    /// The largest primary key among them.
    pub last: Option<i64>,
}

/// The aggregate's array of rows, count and largest key, in its first three columns.
fn rows_text(row: &sea_orm::QueryResult) -> Result<RowsText> {
    let json: Option<String> = row.try_get_by_index(0)?;
    let count: i64 = row.try_get_by_index(1)?;
    // `max` of an `int4` key is an `int4` on PostgreSQL.
    let last: Option<i64> = match row.try_get_by_index::<Option<i64>>(2) {
        Ok(last) => last,
        Err(_) => row.try_get_by_index::<Option<i32>>(2)?.map(i64::from),
    };
    Ok(RowsText {
        json: json.unwrap_or_else(|| "[]".to_owned()),
        rows: usize::try_from(count).unwrap_or(0),
        last,
    })
}

/// `ids` as `[first, last]` runs of consecutive keys, each key once.
fn key_ranges(ids: &[i64]) -> Vec<[i64; 2]> {
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

/// Rows per statement: one parameter whatever the count, so the bound is the statement's
/// size, a few hundred kilobytes.
const BATCH: usize = 5_000;

/// Rows per multi-row statement with bound values: longer statements cost more to prepare
/// than they save.
const BOUND_ROWS: usize = 1_000;

/// SQLite's limit on a statement's parameters.
const MAX_PARAMETERS: usize = 32_766;

/// The JSON kind of a column, when the database's JSON functions encode it as dbsync does.
fn kind(column_type: &ColumnType, template: &Value) -> Option<Kind> {
    let int = |min: i64, max: i64| Some(Kind::Int { min, max });
    match (column_type, template) {
        (ColumnType::TinyInteger, Value::TinyInt(_)) => int(i8::MIN.into(), i8::MAX.into()),
        (ColumnType::SmallInteger, Value::SmallInt(_)) => int(i16::MIN.into(), i16::MAX.into()),
        (ColumnType::Integer, Value::Int(_)) => int(i32::MIN.into(), i32::MAX.into()),
        (ColumnType::BigInteger, Value::BigInt(_)) => int(i64::MIN, i64::MAX),
        (ColumnType::TinyUnsigned, Value::TinyUnsigned(_)) => int(0, u8::MAX.into()),
        (ColumnType::SmallUnsigned, Value::SmallUnsigned(_)) => int(0, u16::MAX.into()),
        (ColumnType::Unsigned, Value::Unsigned(_)) => int(0, u32::MAX.into()),
        (ColumnType::String(_) | ColumnType::Text, Value::String(_)) => Some(Kind::Text),
        _ => None,
    }
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
