//! Row operations on a tracked table without its Rust type, so that messages naming tables
//! by string can be applied: the registry keeps one [`TableOps`] per tracked entity.

use crate::error::{Error, Result};
use crate::oplog::Command;
use crate::row::{Row, decode, from_row, to_row};
use crate::table_json::{FetchedRows, JsonTable, RowsText, Shape};
use crate::tracked::Tracked;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, IdenStatic,
    IntoActiveModel, Iterable, PrimaryKeyToColumn, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

/// A boxed future, as object-safe async methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What inserting a row with an explicit key found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The row was new and is now stored.
    New,
    /// A row with this key and these exact values already existed.
    Identical,
    /// A different row already has this key.
    Conflict,
}

/// Row-level operations on one tracked table, with rows in their JSON form.
pub trait TableOps: Send + Sync + std::fmt::Debug {
    /// The rows with these primary keys (missing keys are skipped).
    fn fetch<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
    /// Up to `limit` rows with a primary key above `after`, in key order.
    fn page<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
    /// Inserts the row, or updates the row with its primary key.
    fn upsert<'a>(&'a self, db: &'a DatabaseTransaction, row: &'a Row)
    -> BoxFuture<'a, Result<()>>;
    /// Inserts the row if its key is free.
    fn insert<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        row: &'a Row,
    ) -> BoxFuture<'a, Result<Inserted>>;
    /// Deletes the rows with these primary keys; absent ones are no error.
    fn delete<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<()>>;
    /// The rows whose columns equal every value in `filters` (column name to JSON value).
    fn query<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        filters: &'a Row,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
    /// Checks that a row decodes for this table.
    fn validate(&self, row: &Row) -> Result<()>;
    /// The row as this table stores it: decoded and encoded again, so that two forms of the
    /// same values compare equal.
    fn normalize(&self, row: &Row) -> Result<Row>;
    /// Inserts or updates every row, by primary key, in as few statements as the database
    /// allows.
    fn upsert_many<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        rows: &'a [&'a Row],
    ) -> BoxFuture<'a, Result<()>>;
    /// Inserts every row, whose keys must be free, in as few statements as possible.
    fn insert_many<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        rows: &'a [&'a Row],
    ) -> BoxFuture<'a, Result<()>>;
    /// Like [`TableOps::page`], with the rows as the JSON text the database itself built, for
    /// tables and databases where it can (see [`TableOps::page`]'s rows for the form);
    /// `None` elsewhere.
    fn page_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Option<RowsText>>> {
        let _ = (db, after, limit);
        Box::pin(async { Ok(None) })
    }
    /// Like [`TableOps::fetch`], with the rows as the JSON text the database built, and the
    /// distinct values each column of `references` holds among them; `None` where the
    /// database cannot build the text.
    #[doc(hidden)]
    fn fetch_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
        references: &'a [String],
    ) -> BoxFuture<'a, Result<Option<FetchedRows>>> {
        let _ = (db, ids, references);
        Box::pin(async { Ok(None) })
    }
    /// Writes a page of a repair snapshot given as a JSON array of rows, where the database
    /// can take it as it is: checked, unique values taken from local rows vacated, upserted.
    /// Returns how many rows it wrote, or `None` where it cannot; the caller decodes the
    /// rows then.
    #[doc(hidden)]
    fn write_snapshot_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        unique: &'a [Vec<String>],
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        let _ = (db, json, unique);
        Box::pin(async { Ok(None) })
    }
    /// Writes the rows of a push given as the JSON array of rows it carried, where the
    /// database can read them without decoding: each row named in `commands` is inserted or
    /// upserted as its command says. `false` where it cannot; the caller decodes the rows.
    #[doc(hidden)]
    fn write_pushed_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        commands: &'a HashMap<i64, Command>,
    ) -> BoxFuture<'a, Result<bool>> {
        let _ = (db, json, commands);
        Box::pin(async { Ok(false) })
    }
    /// Deletes the rows with a key in `(low, high]` absent from the JSON array of rows
    /// `json`, where the database can read it; `false` where it cannot.
    #[doc(hidden)]
    fn delete_absent_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        low: i64,
        high: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        let _ = (db, json, low, high);
        Box::pin(async { Ok(false) })
    }
    /// The rows whose `column` holds one of `values` (row JSON form).
    fn holders<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        column: &'a str,
        values: &'a [serde_json::Value],
    ) -> BoxFuture<'a, Result<Vec<Row>>>;
}

/// The [`TableOps`] of entity `E`.
pub(crate) struct Handle<E>(PhantomData<fn() -> E>);

impl<E> Handle<E> {
    pub(crate) const NEW: Handle<E> = Handle(PhantomData);
}

impl<E> std::fmt::Debug for Handle<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableOps")
    }
}

fn pk_column<E: Tracked>() -> E::Column {
    E::PrimaryKey::iter()
        .next()
        .expect("the derive guarantees one primary key")
        .into_column()
}

/// The primary key of a row in JSON form.
fn row_key<E: Tracked>(row: &Row) -> Option<i64> {
    let column = pk_column::<E>();
    row.get(sea_orm::IdenStatic::as_str(&column))
        .and_then(serde_json::Value::as_i64)
}

fn rows<E: Tracked>(models: Vec<E::Model>) -> Vec<Row> {
    models.iter().map(to_row::<E>).collect()
}

/// The table as the database's JSON functions can read and write it, when they can.
fn json_table<E: Tracked + Default>(backend: DbBackend) -> Option<JsonTable> {
    JsonTable::of::<E>(backend, pk_column::<E>().as_str())
}

impl<E: Tracked + Default> TableOps for Handle<E>
where
    E::Model: IntoActiveModel<E::ActiveModel> + Send + Sync,
    E::ActiveModel: Send + Sync,
{
    fn fetch<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            if let Some(table) = json_table::<E>(db.get_database_backend()) {
                return table.fetch(db, ids).await;
            }
            let mut out = Vec::with_capacity(ids.len());
            if let (Some(&low), Some(&high)) = (ids.iter().min(), ids.iter().max())
                && ids.len() > 64
                && high
                    .checked_sub(low)
                    .is_some_and(|span| span < 2 * ids.len() as i64)
            {
                // Mostly consecutive keys (a batch of new rows, typically): one range scan
                // instead of IN lists, keeping the rows asked for.
                let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
                let found = E::find()
                    .filter(pk_column::<E>().between(low, high))
                    .all(db)
                    .await?;
                out.extend(
                    rows::<E>(found)
                        .into_iter()
                        .filter(|row| row_key::<E>(row).is_some_and(|id| wanted.contains(&id))),
                );
                return Ok(out);
            }
            // Bounded IN lists: SQLite refuses more than 32766 parameters per statement.
            for chunk in ids.chunks(900) {
                let found = E::find()
                    .filter(pk_column::<E>().is_in(chunk.iter().copied()))
                    .all(db)
                    .await?;
                out.extend(rows::<E>(found));
            }
            Ok(out)
        })
    }

    fn page<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            if let Some(table) = json_table::<E>(db.get_database_backend()) {
                return table.page(db, after, limit).await;
            }
            let found = E::find()
                .filter(pk_column::<E>().gt(after))
                .order_by_asc(pk_column::<E>())
                .limit(limit)
                .all(db)
                .await?;
            Ok(rows::<E>(found))
        })
    }

    fn page_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'a, Result<Option<RowsText>>> {
        Box::pin(async move {
            match json_table::<E>(db.get_database_backend()) {
                Some(table) => Ok(Some(table.page_text(db, after, limit).await?)),
                None => Ok(None),
            }
        })
    }

    fn fetch_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
        references: &'a [String],
    ) -> BoxFuture<'a, Result<Option<FetchedRows>>> {
        Box::pin(async move {
            match json_table::<E>(db.get_database_backend()) {
                Some(table) => Ok(Some(table.fetch_text(db, ids, references).await?)),
                None => Ok(None),
            }
        })
    }

    fn write_snapshot_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        unique: &'a [Vec<String>],
    ) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            match json_table::<E>(db.get_database_backend()) {
                Some(table) => table.write_snapshot_text(db, json, unique).await,
                None => Ok(None),
            }
        })
    }

    fn write_pushed_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        commands: &'a HashMap<i64, Command>,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            match json_table::<E>(db.get_database_backend()) {
                Some(table) => table.write_pushed(db, json, commands).await.map(|()| true),
                None => Ok(false),
            }
        })
    }

    fn delete_absent_text<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        json: &'a str,
        low: i64,
        high: i64,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            match json_table::<E>(db.get_database_backend()) {
                Some(table) => table.delete_absent_text(db, json, low, high).await,
                None => Ok(false),
            }
        })
    }

    fn upsert<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        row: &'a Row,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let model = from_row::<E>(row)?;
            let active = model.into_active_model().reset_all();
            if db.get_database_backend() == DbBackend::MySql {
                // MySQL's upsert fires on any unique key, not only the primary one: it would
                // update another row that holds the same unique value instead of failing.
                let id = row_id(row, pk_column::<E>().as_str())?;
                if self.fetch(db, &[id]).await?.is_empty() {
                    E::insert(active).exec_without_returning(db).await?;
                } else {
                    E::update(active).exec(db).await?;
                }
                return Ok(());
            }
            let pk = pk_column::<E>();
            let others: Vec<E::Column> = E::Column::iter()
                .filter(|c| c.as_str() != pk.as_str())
                .collect();
            let mut conflict = OnConflict::column(pk);
            if others.is_empty() {
                conflict.do_nothing();
            } else {
                conflict.update_columns(others);
            }
            match E::insert(active)
                .on_conflict(conflict)
                .exec_without_returning(db)
                .await
            {
                Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => Ok(()),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn insert<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        row: &'a Row,
    ) -> BoxFuture<'a, Result<Inserted>> {
        Box::pin(async move {
            let model = from_row::<E>(row)?;
            let id = row_id(row, pk_column::<E>().as_str())?;
            let existing = self.fetch(db, &[id]).await?;
            if let Some(existing) = existing.first() {
                return Ok(if existing == &to_row::<E>(&model) {
                    Inserted::Identical
                } else {
                    Inserted::Conflict
                });
            }
            let active = model.into_active_model().reset_all();
            E::insert(active).exec_without_returning(db).await?;
            Ok(Inserted::New)
        })
    }

    fn delete<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        ids: &'a [i64],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for chunk in ids.chunks(900) {
                E::delete_many()
                    .filter(pk_column::<E>().is_in(chunk.iter().copied()))
                    .exec(db)
                    .await?;
            }
            Ok(())
        })
    }

    fn query<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        filters: &'a Row,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let table = E::default().table_name();
            let templates = E::column_templates();
            let mut select = E::find();
            for (name, json) in filters {
                let (column, template) = E::Column::iter()
                    .zip(templates.iter())
                    .find(|(c, _)| c.as_str() == name)
                    .ok_or_else(|| Error::UnknownColumn {
                        table: table.to_owned(),
                        column: name.clone(),
                    })?;
                let value = decode(json, template).map_err(|reason| Error::RowCodec {
                    table: table.to_owned(),
                    column: name.clone(),
                    reason,
                })?;
                select = if json.is_null() {
                    select.filter(column.is_null())
                } else {
                    select.filter(column.eq(value))
                };
            }
            let found = select
                .order_by_asc(pk_column::<E>())
                .limit(limit)
                .all(db)
                .await?;
            Ok(rows::<E>(found))
        })
    }

    fn upsert_many<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        rows: &'a [&'a Row],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(table) = json_table::<E>(db.get_database_backend()) {
                return table.write(db, rows, true).await;
            }
            if db.get_database_backend() == DbBackend::MySql {
                for row in rows {
                    self.upsert(db, row).await?;
                }
                return Ok(());
            }
            let pk = pk_column::<E>();
            let others: Vec<E::Column> = E::Column::iter()
                .filter(|c| c.as_str() != pk.as_str())
                .collect();
            for chunk in rows.chunks(batch_rows::<E>(db.get_database_backend())) {
                let models = chunk
                    .iter()
                    .map(|row| Ok(from_row::<E>(row)?.into_active_model().reset_all()))
                    .collect::<Result<Vec<_>>>()?;
                let mut conflict = OnConflict::column(pk);
                if others.is_empty() {
                    conflict.do_nothing();
                } else {
                    conflict.update_columns(others.clone());
                }
                match E::insert_many(models)
                    .on_conflict(conflict)
                    .exec_without_returning(db)
                    .await
                {
                    Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(())
        })
    }

    fn insert_many<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        rows: &'a [&'a Row],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if let Some(table) = json_table::<E>(db.get_database_backend()) {
                return table.write(db, rows, false).await;
            }
            for chunk in rows.chunks(batch_rows::<E>(db.get_database_backend())) {
                let models = chunk
                    .iter()
                    .map(|row| Ok(from_row::<E>(row)?.into_active_model().reset_all()))
                    .collect::<Result<Vec<_>>>()?;
                E::insert_many(models).exec_without_returning(db).await?;
            }
            Ok(())
        })
    }

    fn holders<'a>(
        &'a self,
        db: &'a DatabaseTransaction,
        column: &'a str,
        values: &'a [serde_json::Value],
    ) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            if let Some(table) = json_table::<E>(db.get_database_backend())
                && let Some(found) = table.holders(db, column, values).await?
            {
                return Ok(found);
            }
            let table = E::default().table_name();
            let (column, template) = E::Column::iter()
                .zip(E::column_templates())
                .find(|(c, _)| c.as_str() == column)
                .ok_or_else(|| Error::UnknownColumn {
                    table: table.to_owned(),
                    column: column.to_owned(),
                })?;
            let mut decoded = Vec::with_capacity(values.len());
            for json in values.iter().filter(|v| !v.is_null()) {
                decoded.push(decode(json, &template).map_err(|reason| Error::RowCodec {
                    table: table.to_owned(),
                    column: column.as_str().to_owned(),
                    reason,
                })?);
            }
            let mut out = Vec::new();
            for chunk in decoded.chunks(900) {
                let found = E::find()
                    .filter(column.is_in(chunk.iter().cloned()))
                    .all(db)
                    .await?;
                out.extend(rows::<E>(found));
            }
            Ok(out)
        })
    }

    fn normalize(&self, row: &Row) -> Result<Row> {
        Ok(to_row::<E>(&from_row::<E>(row)?))
    }

    fn validate(&self, row: &Row) -> Result<()> {
        if let Some(shape) = Shape::of::<E>(pk_column::<E>().as_str()) {
            return shape.check(row);
        }
        from_row::<E>(row).map(|_| ())
    }
}

/// Rows per multi-row statement: SQLite accepts at most 32,766 bound values in one. Fewer,
/// larger statements matter most over TCP, where sqlx 0.9 leaves Nagle's algorithm on; MySQL
/// keeps smaller ones, whose packets its `max_allowed_packet` bounds.
fn batch_rows<E: Tracked>(backend: DbBackend) -> usize {
    let most = if backend == DbBackend::MySql {
        1_000
    } else {
        5_000
    };
    (30_000 / E::Column::iter().count().max(1)).clamp(1, most)
}

/// The integer primary key of a row in JSON form.
pub(crate) fn row_id(row: &Row, pk: &str) -> Result<i64> {
    row.get(pk)
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| Error::RowCodec {
            table: String::new(),
            column: pk.to_owned(),
            reason: "the primary key is missing or not an integer".to_owned(),
        })
}
