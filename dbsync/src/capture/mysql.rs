//! MySQL and MariaDB capture: one trigger per event and table.
//!
//! Two things differ from the other databases:
//! - Foreign-key cascades do not fire triggers in InnoDB, so each parent's `BEFORE DELETE`
//!   trigger logs what its cascades are about to do to tracked children (and theirs).
//! - There is no transaction-scoped setting. Suppression combines a session variable with a
//!   token row that dbsync inserts in its own transaction and deletes before committing: a
//!   rolled-back transaction takes the row with it, so a variable left on a pooled
//!   connection matches nothing and cannot silence a later user transaction.

use super::{DELETE, INSERT, UPDATE, object_name, value_columns};
use crate::registry::Registry;
use crate::table::{FkAction, TableInfo};

pub(super) fn log_tables() -> Vec<String> {
    vec![
        "CREATE TABLE IF NOT EXISTS dbsync_operations (\
            seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, \
            content_type_id BIGINT NOT NULL, \
            row_id BIGINT NOT NULL, \
            command CHAR(1) NOT NULL, \
            version_id BIGINT NULL, \
            INDEX dbsync_operations_row (content_type_id, row_id))"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS dbsync_suppress (token VARCHAR(64) NOT NULL PRIMARY KEY)"
            .to_owned(),
    ]
}

fn q(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

const ACTIVE: &str = "@dbsync_suppress IS NULL OR NOT EXISTS \
    (SELECT 1 FROM dbsync_suppress WHERE token = @dbsync_suppress)";

fn log(ct: u32, key: &str, command: &str) -> String {
    format!(
        "INSERT INTO dbsync_operations (content_type_id, row_id, command) \
         VALUES ({ct}, {key}, {command});"
    )
}

fn trigger(create: &str, table: &TableInfo, suffix: &str, timing: &str, body: &str) -> String {
    format!(
        "{create} {} {timing} ON {} FOR EACH ROW BEGIN IF {ACTIVE} THEN {body} END IF; END",
        q(&object_name(table, suffix)),
        q(&table.name),
    )
}

/// `mariadb`: MariaDB replaces a trigger in one statement, so writes keep being captured
/// while `create_all` runs; MySQL has to drop it first, which leaves a short gap (its DDL is
/// not transactional either).
pub(super) fn install(table: &TableInfo, captured: &Registry, mariadb: bool) -> Vec<String> {
    let (mut out, create) = if mariadb {
        (Vec::new(), "CREATE OR REPLACE TRIGGER")
    } else {
        (uninstall(table), "CREATE TRIGGER")
    };
    let pk = q(&table.primary_key);
    let ct = table.content_type_id;
    let same: Vec<String> = value_columns(table)
        // BINARY: under MySQL's default case-insensitive collations 'Ann' = 'ANN', and a
        // case-only edit would otherwise go unrecorded.
        .map(|c| format!("BINARY OLD.{0} <=> BINARY NEW.{0}", q(&c.name)))
        .collect();
    let same = if same.is_empty() {
        "TRUE".to_owned()
    } else {
        same.join(" AND ")
    };
    out.push(trigger(
        create,
        table,
        "ins",
        "AFTER INSERT",
        &log(ct, &format!("NEW.{pk}"), INSERT),
    ));
    out.push(trigger(
        create,
        table,
        "upd",
        "AFTER UPDATE",
        &format!(
            "IF NOT (OLD.{pk} <=> NEW.{pk}) THEN {} {} ELSEIF NOT ({same}) THEN {} END IF;",
            log(ct, &format!("OLD.{pk}"), DELETE),
            log(ct, &format!("NEW.{pk}"), INSERT),
            log(ct, &format!("NEW.{pk}"), UPDATE),
        ),
    ));
    out.push(trigger(
        create,
        table,
        "del",
        "AFTER DELETE",
        &log(ct, &format!("OLD.{pk}"), DELETE),
    ));
    let mut cascades = Vec::new();
    cascade_logs(table, captured, &mut Vec::new(), &mut cascades);
    if !cascades.is_empty() {
        out.push(trigger(
            create,
            table,
            "casc",
            "BEFORE DELETE",
            &cascades.join(" "),
        ));
    } else if mariadb {
        out.push(format!(
            "DROP TRIGGER IF EXISTS {}",
            q(&object_name(table, "casc"))
        ));
    }
    out
}

/// One step down a cascade: the child table, the child's foreign-key column and the parent
/// column it references.
struct Step<'a> {
    child: &'a TableInfo,
    fk_column: &'a str,
    parent_column: &'a str,
}

const MAX_CASCADE_DEPTH: usize = 8;

/// Appends, deepest first, one `INSERT ... SELECT` per tracked table that a delete of a
/// `parent` row reaches through `ON DELETE CASCADE` or `SET NULL`. A cycle ends the walk:
/// InnoDB itself refuses cascades deeper than 15.
fn cascade_logs<'a>(
    parent: &'a TableInfo,
    captured: &'a Registry,
    path: &mut Vec<Step<'a>>,
    out: &mut Vec<String>,
) {
    if path.len() >= MAX_CASCADE_DEPTH {
        return;
    }
    for child in captured.tables() {
        for fk in &child.foreign_keys {
            let ([fk_column], [parent_column]) = (&fk.columns[..], &fk.to_columns[..]) else {
                continue;
            };
            if fk.to_table != parent.name || path.iter().any(|s| s.child.name == child.name) {
                continue;
            }
            let command = match fk.on_delete {
                Some(FkAction::Cascade) => DELETE,
                Some(FkAction::SetNull) | Some(FkAction::SetDefault) => UPDATE,
                _ => continue,
            };
            path.push(Step {
                child,
                fk_column,
                parent_column,
            });
            if command == DELETE {
                cascade_logs(child, captured, path, out);
            }
            out.push(select_reached(path, command));
            path.pop();
        }
    }
}

/// `INSERT ... SELECT` of the rows at the end of `path` that reference the deleted row.
fn select_reached(path: &[Step<'_>], command: &str) -> String {
    let last = path.len() - 1;
    let target = path[last].child;
    let mut sql = format!(
        "INSERT INTO dbsync_operations (content_type_id, row_id, command) \
         SELECT {}, t{last}.{}, {command} FROM {} t{last}",
        target.content_type_id,
        q(&target.primary_key),
        q(&target.name),
    );
    for i in (0..last).rev() {
        let above = &path[i + 1];
        sql.push_str(&format!(
            " JOIN {} t{i} ON t{}.{} = t{i}.{}",
            q(&path[i].child.name),
            i + 1,
            q(above.fk_column),
            q(above.parent_column),
        ));
    }
    sql.push_str(&format!(
        " WHERE t0.{} = OLD.{};",
        q(path[0].fk_column),
        q(path[0].parent_column)
    ));
    sql
}

pub(super) fn uninstall(table: &TableInfo) -> Vec<String> {
    ["ins", "upd", "del", "casc"]
        .iter()
        .map(|s| format!("DROP TRIGGER IF EXISTS {}", q(&object_name(table, s))))
        .collect()
}
