//! Reading many small rows as one JSON text that the database builds.
//!
//! A driver row costs far more than the values it holds: with sqlx's SQLite driver each row
//! crosses a channel from the database thread, and each value is decoded on its own. The log
//! and key queries of a sync return thousands of rows of a few integers each, so SQLite and
//! PostgreSQL aggregate them into one JSON array instead, which serde reads at memory speed.
//! MySQL's rows are read one by one into the same form.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// The rows of `sql`, a query selecting `columns` (with the backend's own placeholders), each
/// as a `T` read from a JSON array of its values (integers, strings or `null`), in the
/// query's order.
///
/// ```
/// # async fn demo() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// let rows: Vec<(i64, String)> = dbsync::__private::select_json(
///     &db,
///     "SELECT 1 AS n, 'one' AS word UNION ALL SELECT 2, 'two' ORDER BY n",
///     &["n", "word"],
///     vec![],
/// )
/// .await?;
/// assert_eq!(rows, vec![(1, "one".into()), (2, "two".into())]);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub async fn select_json<T, C>(
    db: &C,
    sql: &str,
    columns: &[&str],
    values: Vec<Value>,
) -> Result<Vec<T>, DbErr>
where
    T: DeserializeOwned,
    C: ConnectionTrait,
{
    let backend = db.get_database_backend();
    let list = columns.join(", ");
    // An aggregate keeps the order of the subquery it reads in both databases, though
    // neither promises it in general; callers that depend on it check or sort.
    let text = match backend {
        DbBackend::Sqlite => {
            let wrapped = format!("SELECT json_group_array(json_array({list})) FROM ({sql})");
            let statement = Statement::from_sql_and_values(backend, wrapped, values);
            aggregate_text(db, statement).await?
        }
        DbBackend::Postgres => {
            let wrapped = format!("SELECT {} FROM ({sql}) AS t", postgres_columns(columns));
            let statement = Statement::from_sql_and_values(backend, wrapped, values);
            match db.query_one_raw(statement).await? {
                Some(row) => rows_from_columns(&row, 0, columns.len(), None)?,
                None => None,
            }
        }
        _ => return select_rows(db, sql, columns.len(), values).await,
    };
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    serde_json::from_str(&text)
        .map_err(|e| DbErr::Custom(format!("rows aggregated as JSON do not decode: {e}")))
}

/// PostgreSQL's aggregate of each of `columns` (of the rows of `t`) as a JSON array, in
/// the same order: aggregating columns took half the time of aggregating rows
/// (`json_agg` of `json_build_array`), which costs a function call per row and value.
/// [`rows_from_columns`] turns them back into rows.
pub(crate) fn postgres_columns<S: AsRef<str>>(columns: &[S]) -> String {
    columns
        .iter()
        .map(|c| format!("array_to_json(array_agg(t.{}))::text", c.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rows as the text of a JSON array, from `count` columns of `row` from index `first`, each
/// the JSON array of one column's values in row order ([`postgres_columns`]): arrays of
/// values (`[[1, "a"], ...]`), or with `keys`, objects (`[{"id": 1, "name": "a"}, ...]`);
/// keys must need no escaping. `None` for no rows.
pub(crate) fn rows_from_columns(
    row: &sea_orm::QueryResult,
    first: usize,
    count: usize,
    keys: Option<&[&str]>,
) -> Result<Option<String>, DbErr> {
    let undecodable = |e: serde_json::Error| {
        DbErr::Custom(format!("a column aggregated as JSON does not decode: {e}"))
    };
    let mut texts = Vec::with_capacity(count);
    for index in first..first + count {
        match row.try_get_by_index::<Option<String>>(index)? {
            Some(text) => texts.push(text),
            None => return Ok(None),
        }
    }
    let mut columns: Vec<Vec<&serde_json::value::RawValue>> = Vec::with_capacity(count);
    for text in &texts {
        columns.push(serde_json::from_str(text).map_err(undecodable)?);
    }
    let rows = columns.first().map_or(0, Vec::len);
    if columns.iter().any(|c| c.len() != rows) {
        return Err(DbErr::Custom(
            "aggregated columns of different lengths".into(),
        ));
    }
    let keys_len: usize = keys.map_or(0, |k| k.iter().map(|k| k.len() + 3).sum());
    let mut out = String::with_capacity(
        texts.iter().map(String::len).sum::<usize>() + rows * (keys_len + 2) + 2,
    );
    let (open, close) = if keys.is_some() {
        ('{', '}')
    } else {
        ('[', ']')
    };
    out.push('[');
    for r in 0..rows {
        if r > 0 {
            out.push(',');
        }
        out.push(open);
        for (c, column) in columns.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            if let Some(key) = keys.and_then(|k| k.get(c)) {
                out.push('"');
                out.push_str(key);
                out.push_str("\":");
            }
            out.push_str(column[r].get());
        }
        out.push(close);
    }
    out.push(']');
    Ok(Some(out))
}

/// The JSON text of a query that aggregates rows into its first column; `None` for no
/// rows (an aggregate over nothing is `NULL`).
pub(crate) async fn aggregate_text<C: ConnectionTrait>(
    db: &C,
    statement: Statement,
) -> Result<Option<String>, DbErr> {
    match db.query_one_raw(statement).await? {
        Some(row) => row.try_get_by_index(0),
        None => Ok(None),
    }
}

/// Whether `table` (quoted) holds no row.
pub(crate) async fn is_empty<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let sql = format!("SELECT 1 FROM {table} LIMIT 1");
    let statement = Statement::from_string(db.get_database_backend(), sql);
    Ok(db.query_one_raw(statement).await?.is_none())
}

/// [`select_json`] where the database cannot aggregate: each row, read value by value, as
/// the JSON array the aggregate would have built.
async fn select_rows<T, C>(
    db: &C,
    sql: &str,
    columns: usize,
    values: Vec<Value>,
) -> Result<Vec<T>, DbErr>
where
    T: DeserializeOwned,
    C: ConnectionTrait,
{
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    let mut out = Vec::new();
    for row in db.query_all_raw(statement).await? {
        let mut fields = Vec::with_capacity(columns);
        for i in 0..columns {
            fields.push(match row.try_get_by_index::<Option<i64>>(i) {
                Ok(number) => number.map_or(Json::Null, Json::from),
                Err(_) => row
                    .try_get_by_index::<Option<String>>(i)?
                    .map_or(Json::Null, Json::from),
            });
        }
        out.push(
            serde_json::from_value(Json::Array(fields))
                .map_err(|e| DbErr::Custom(format!("a row does not decode: {e}")))?,
        );
    }
    Ok(out)
}
