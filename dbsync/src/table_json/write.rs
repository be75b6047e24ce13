//! Writing rows: multi-row statements of bound values on SQLite, one JSON parameter on
//! PostgreSQL, and repair pages from their text.

use super::JsonTable;
use crate::capture::quote;
use crate::error::{Error, Result};
use crate::oplog::Command;
use crate::row::Row;
use crate::rows_text::{Kind, null, row_values};
use crate::select_json::is_empty;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

impl JsonTable {
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

    /// Writes the rows of a push as they arrived, a JSON array of rows: checked as
    /// [`JsonTable::check`] would, read in one pass into values to bind, and each row named
    /// by `commands` inserted or upserted as its command says; rows no command names are
    /// left out. Refuses a row twice, and a command without its row.
    pub(crate) async fn write_pushed(
        &self,
        db: &DatabaseTransaction,
        json: &str,
        commands: &HashMap<i64, Command>,
    ) -> Result<()> {
        let values = row_values(&self.columns, json).map_err(|refusal| Error::RowCodec {
            table: self.table.clone(),
            column: refusal.column,
            reason: refusal.reason,
        })?;
        let width = self.columns.len().max(1);
        let pk = self
            .columns
            .iter()
            .position(|(name, _)| *name == self.primary_key)
            .ok_or_else(|| Error::InvalidOperation(format!("`{}` has no key", self.table)))?;
        let mut found = HashSet::with_capacity(commands.len());
        let mut target = Vec::with_capacity(values.len() / width);
        for row in values.chunks(width) {
            let Value::BigInt(Some(id)) = row[pk] else {
                return Err(Error::RowCodec {
                    table: self.table.clone(),
                    column: self.primary_key.clone(),
                    reason: "the primary key is missing or not an integer".to_owned(),
                });
            };
            let command = commands.get(&id).copied();
            if command.is_some() && !found.insert(id) {
                return Err(crate::apply::twice(&self.table, id));
            }
            target.push(command);
        }
        if let Some((id, command)) = commands.iter().find(|(id, _)| !found.contains(*id)) {
            return Err(Error::InvalidOperation(format!(
                "no row for the {command:?} of `{}` {id}",
                self.table
            )));
        }
        let mut inserts = Vec::with_capacity(values.len());
        let mut updates = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            match target[i / width] {
                Some(Command::Insert) => inserts.push(value),
                Some(_) => updates.push(value),
                None => {}
            }
        }
        if self.backend == DbBackend::Sqlite {
            self.write_values(db, inserts, false).await?;
            return self.write_values(db, updates, true).await;
        }
        for (values, upsert) in [(inserts, false), (updates, true)] {
            let sql = self.insert_sql(upsert);
            for chunk in values.chunks(BATCH * width) {
                db.execute_raw(Statement::from_sql_and_values(
                    self.backend,
                    sql.clone(),
                    vec![self.rows_json(chunk).into()],
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// Rows given as their values in column order, one after the other, as a JSON array of
    /// objects: what [`JsonTable::insert_sql`] reads.
    fn rows_json(&self, values: &[Value]) -> String {
        let width = self.columns.len().max(1);
        let mut out = String::with_capacity(values.len() * 16 + 2);
        out.push('[');
        for (r, row) in values.chunks(width).enumerate() {
            if r > 0 {
                out.push(',');
            }
            out.push('{');
            for (c, ((name, _), value)) in self.columns.iter().zip(row).enumerate() {
                if c > 0 {
                    out.push(',');
                }
                // Column names are plain identifiers (see `Shape::build`).
                out.push('"');
                out.push_str(name);
                out.push_str("\":");
                match value {
                    Value::BigInt(Some(n)) => {
                        let _ = write!(out, "{n}");
                    }
                    Value::String(Some(text)) => {
                        out.push_str(&Json::from(text.as_str()).to_string());
                    }
                    _ => out.push_str("null"),
                }
            }
            out.push('}');
        }
        out.push(']');
        out
    }

    /// Writes a snapshot page of this table, given as a JSON array of rows, on SQLite: the
    /// rows are checked as [`JsonTable::check`] would, local rows holding a unique value the
    /// page takes from them get a placeholder (see `apply::vacate_held_values`), and every
    /// row is upserted, all from the text itself. Returns how many rows it wrote; `None` on
    /// other databases.
    pub(crate) async fn write_snapshot_text(
        &self,
        db: &DatabaseTransaction,
        json: &str,
        unique: &[Vec<String>],
    ) -> Result<Option<u64>> {
        if self.backend != DbBackend::Sqlite {
            return Ok(None);
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
        let rows = values.len() / self.columns.len().max(1);
        self.write_values(db, values, true).await?;
        Ok(Some(rows as u64))
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

/// Rows per statement: one parameter whatever the count, so the bound is the statement's
/// size, a few hundred kilobytes.
const BATCH: usize = 5_000;

/// Rows per multi-row statement with bound values: longer statements cost more to prepare
/// than they save.
const BOUND_ROWS: usize = 1_000;

/// SQLite's limit on a statement's parameters.
const MAX_PARAMETERS: usize = 32_766;
