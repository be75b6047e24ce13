//! Change capture: triggers generated from entity metadata that append to the operations log
//! in the same transaction as the write.
//!
//! Triggers are the only interception point that sees every write path: ActiveModel calls,
//! `Entity::insert_many`/`update_many`/`delete_many`, raw SQL, other programs, and the
//! database's own foreign-key cascades. See `docs/design.md` for the alternatives and why
//! they lose writes.

mod mysql;
mod postgres;
mod sqlite;

use crate::registry::Registry;
use crate::table::TableInfo;
use sea_orm::DbBackend;

/// DDL for dbsync's own tables.
pub(crate) fn log_tables(backend: DbBackend) -> Vec<String> {
    match backend {
        DbBackend::Sqlite => sqlite::log_tables(),
        DbBackend::Postgres => postgres::log_tables(),
        _ => mysql::log_tables(),
    }
}

/// DDL that removes dbsync's own tables.
pub(crate) fn drop_log_tables(backend: DbBackend) -> Vec<String> {
    let mut tables = vec!["dbsync_operations", "dbsync_state"];
    if backend == DbBackend::MySql {
        tables.push("dbsync_suppress");
    }
    tables
        .into_iter()
        .map(|t| format!("DROP TABLE IF EXISTS {t}"))
        .collect()
}

/// DDL that (re)installs capture on `table`. It replaces what an earlier run installed, so it
/// picks up columns a migration added. `captured` lists the tables that get capture, which
/// MySQL needs to log foreign-key cascades itself.
pub(crate) fn install(
    backend: DbBackend,
    table: &TableInfo,
    captured: &Registry,
    mariadb: bool,
) -> Vec<String> {
    match backend {
        DbBackend::Sqlite => sqlite::install(table),
        DbBackend::Postgres => postgres::install(table),
        _ => mysql::install(table, captured, mariadb),
    }
}

/// DDL that removes capture from `table`.
pub(crate) fn uninstall(backend: DbBackend, table: &TableInfo) -> Vec<String> {
    match backend {
        DbBackend::Sqlite => sqlite::uninstall(table),
        DbBackend::Postgres => postgres::uninstall(table),
        _ => mysql::uninstall(table),
    }
}

/// Command letters as stored in the log.
pub(crate) const INSERT: &str = "'i'";
pub(crate) const UPDATE: &str = "'u'";
pub(crate) const DELETE: &str = "'d'";

/// Columns other than the primary key: a change to one of them is an update.
pub(crate) fn value_columns(table: &TableInfo) -> impl Iterator<Item = &crate::ColumnInfo> {
    table
        .columns
        .iter()
        .filter(move |c| c.name != table.primary_key)
}

/// Quotes an identifier for SQLite and PostgreSQL.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A trigger or function name derived from the table's, safe to quote.
pub(crate) fn object_name(table: &TableInfo, suffix: &str) -> String {
    format!("dbsync_{}_{suffix}", table.name)
}
