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
use crate::rows_text::Kind;
use sea_orm::{ColumnTrait, ColumnType, DbBackend, IdenStatic, Iterable, Value};
use serde_json::Value as Json;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

mod read;
mod write;

pub use read::key_ranges;
pub use read::{FetchedRows, RowsText};

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
    /// The aggregate of a query's rows as JSON: on SQLite, one column holding the array of
    /// row objects; on PostgreSQL, one JSON array per column of the rows of the subquery `t`
    /// (see [`crate::select_json::postgres_columns`]), half the work of `json_agg` of whole
    /// rows. [`JsonTable::rows_json_at`] reads either back.
    fn rows_aggregate(&self) -> String {
        match self.backend {
            DbBackend::Postgres => {
                let names: Vec<String> = self.columns.iter().map(|(n, _)| quote(n)).collect();
                crate::select_json::postgres_columns(&names)
            }
            _ => format!("json_group_array(json_object({}))", self.pairs()),
        }
    }

    /// The rows [`JsonTable::rows_aggregate`] aggregated, from column `first` of `row` on,
    /// as the text of a JSON array of row objects; `None` for no rows.
    fn rows_json_at(&self, row: &sea_orm::QueryResult, first: usize) -> Result<Option<String>> {
        if self.backend != DbBackend::Postgres {
            return Ok(row.try_get_by_index(first)?);
        }
        // Column names are plain identifiers (see `Shape::build`): as keys they need no
        // escaping.
        let keys: Vec<&str> = self.columns.iter().map(|(n, _)| n.as_str()).collect();
        Ok(crate::select_json::rows_from_columns(
            row,
            first,
            keys.len(),
            Some(&keys),
        )?)
    }

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
