//! SQLite capture: three `AFTER` triggers per table (plus one for primary-key changes).
//!
//! Suppression reads a one-row table inside the writing transaction: dbsync sets the flag in
//! its own transaction and clears it before committing, so no other connection ever sees it
//! set, and SQLite's single writer means nobody else writes meanwhile anyway.

use super::{DELETE, INSERT, UPDATE, object_name, quote, value_columns};
use crate::table::TableInfo;

pub(super) fn log_tables() -> Vec<String> {
    vec![
        // AUTOINCREMENT: a sequence number is never reused, even after the log is trimmed.
        "CREATE TABLE IF NOT EXISTS dbsync_operations (\
            seq INTEGER PRIMARY KEY AUTOINCREMENT, \
            content_type_id INTEGER NOT NULL, \
            row_id INTEGER NOT NULL, \
            command TEXT NOT NULL CHECK (command IN ('i', 'u', 'd')), \
            version_id INTEGER)"
            .to_owned(),
        "CREATE INDEX IF NOT EXISTS dbsync_operations_row \
            ON dbsync_operations (content_type_id, row_id)"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS dbsync_state (\
            id INTEGER PRIMARY KEY CHECK (id = 1), \
            suppress INTEGER NOT NULL DEFAULT 0)"
            .to_owned(),
        "INSERT OR IGNORE INTO dbsync_state (id, suppress) VALUES (1, 0)".to_owned(),
    ]
}

const ACTIVE: &str = "(SELECT suppress FROM dbsync_state WHERE id = 1) = 0";

fn log(ct: u32, key: &str, command: &str) -> String {
    format!(
        "INSERT INTO dbsync_operations (content_type_id, row_id, command) \
         VALUES ({ct}, {key}, {command});"
    )
}

pub(super) fn install(table: &TableInfo) -> Vec<String> {
    let mut out = uninstall(table);
    let t = quote(&table.name);
    let pk = quote(&table.primary_key);
    let ct = table.content_type_id;
    let changed: Vec<String> = value_columns(table)
        .map(|c| format!("OLD.{0} IS NOT NEW.{0}", quote(&c.name)))
        .collect();
    let changed = if changed.is_empty() {
        "0".to_owned()
    } else {
        changed.join(" OR ")
    };
    out.push(format!(
        "CREATE TRIGGER {} AFTER INSERT ON {t} WHEN {ACTIVE} BEGIN {} END",
        quote(&object_name(table, "ins")),
        log(ct, &format!("NEW.{pk}"), INSERT),
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER UPDATE ON {t} \
         WHEN {ACTIVE} AND OLD.{pk} = NEW.{pk} AND ({changed}) BEGIN {} END",
        quote(&object_name(table, "upd")),
        log(ct, &format!("NEW.{pk}"), UPDATE),
    ));
    // A changed key is a different row to every other node: the old one goes, a new one comes.
    out.push(format!(
        "CREATE TRIGGER {} AFTER UPDATE OF {pk} ON {t} \
         WHEN {ACTIVE} AND OLD.{pk} <> NEW.{pk} BEGIN {} {} END",
        quote(&object_name(table, "key")),
        log(ct, &format!("OLD.{pk}"), DELETE),
        log(ct, &format!("NEW.{pk}"), INSERT),
    ));
    out.push(format!(
        "CREATE TRIGGER {} AFTER DELETE ON {t} WHEN {ACTIVE} BEGIN {} END",
        quote(&object_name(table, "del")),
        log(ct, &format!("OLD.{pk}"), DELETE),
    ));
    out
}

pub(super) fn uninstall(table: &TableInfo) -> Vec<String> {
    ["ins", "upd", "key", "del"]
        .iter()
        .map(|s| format!("DROP TRIGGER IF EXISTS {}", quote(&object_name(table, s))))
        .collect()
}
