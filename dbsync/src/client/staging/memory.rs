//! The part of a staging session kept in memory, until it outgrows its budget. It follows
//! the staging table's rules: a row staged twice keeps its newest state, and the newest
//! operation logged for it (a row sent only as a parent carries none).

use super::{Entry, StagedPage};
use crate::messages::WireOperation;
use crate::oplog::Command;
use crate::row::Row;
use std::collections::{BTreeMap, HashMap};

/// A row kept in memory: the newest command logged for it, and its newest state.
type Kept = (Option<Command>, Option<Row>);

/// What a session keeps in memory.
#[derive(Default)]
pub(super) struct Memory {
    /// Everything is in the tables from now on.
    pub spilled: bool,
    bytes: usize,
    /// Per table, by key.
    pub entries: BTreeMap<String, BTreeMap<i64, Kept>>,
    /// Repair pages by index, as they arrived.
    pub pages: BTreeMap<i64, (StagedPage, String)>,
}

impl Memory {
    /// A session that stages in the tables from now on.
    pub(super) fn spilled() -> Memory {
        Memory {
            spilled: true,
            ..Memory::default()
        }
    }

    /// Keeps one pull page if it fits `budget`, taking its rows; gives them back when it
    /// does not (or the session already outgrew it). `by_key` holds every row of the page
    /// by table and key.
    pub(super) fn keep<'p>(
        &mut self,
        ops: &'p [WireOperation],
        mut by_key: HashMap<(&'p str, i64), Row>,
        budget: usize,
    ) -> Result<(), HashMap<(&'p str, i64), Row>> {
        let size = by_key.values().map(row_size).sum::<usize>() + ops.len() * 16;
        if self.spilled || self.bytes + size > budget {
            return Err(by_key);
        }
        self.bytes += size;
        // The newest operation of each row counts, with the row as the page has it.
        let mut newest: HashMap<(&str, i64), Command> = HashMap::with_capacity(ops.len());
        for op in ops {
            newest.insert((op.table.as_str(), op.row_id), op.command);
        }
        for ((table, id), command) in newest {
            let row = by_key.remove(&(table, id));
            let data = if command == Command::Delete {
                None
            } else {
                row
            };
            *self.slot(table, id) = (Some(command), data);
        }
        for ((table, id), row) in by_key {
            self.slot(table, id).1 = Some(row);
        }
        Ok(())
    }

    fn slot(&mut self, table: &str, id: i64) -> &mut Kept {
        // Looked up before inserting: a page's rows are mostly of tables seen already.
        if !self.entries.contains_key(table) {
            self.entries.insert(table.to_owned(), BTreeMap::new());
        }
        self.entries
            .get_mut(table)
            .expect("inserted above")
            .entry(id)
            .or_default()
    }

    /// Keeps one repair page, as it arrived, if it fits `budget`.
    pub(super) fn keep_page(
        &mut self,
        index: i64,
        page: &StagedPage,
        rows: &str,
        budget: usize,
    ) -> bool {
        if self.spilled || self.bytes + rows.len() > budget {
            return false;
        }
        self.bytes += rows.len();
        self.pages.insert(index, (page.clone(), rows.to_owned()));
        true
    }

    /// Up to `limit` entries of `table` with a key above `after`, in key order; `None` once
    /// the session stages in the tables. With `take`, the rows move out and later reads
    /// see the keys and commands only.
    pub(super) fn chunk(
        &mut self,
        table: &str,
        after: i64,
        limit: usize,
        take: bool,
    ) -> Option<Vec<Entry>> {
        if self.spilled {
            return None;
        }
        let Some(rows) = self.entries.get_mut(table) else {
            return Some(Vec::new());
        };
        Some(
            rows.range_mut(after.saturating_add(1)..)
                .take(limit)
                .map(|(id, (command, data))| Entry {
                    row_id: *id,
                    command: *command,
                    data: if take { data.take() } else { data.clone() },
                })
                .collect(),
        )
    }

    /// Whether a delete is kept for `table`; `None` once the session stages in the tables.
    pub(super) fn has_deletes(&self, table: &str) -> Option<bool> {
        if self.spilled {
            return None;
        }
        Some(self.entries.get(table).is_some_and(|rows| {
            rows.values()
                .any(|(command, _)| *command == Some(Command::Delete))
        }))
    }

    /// The largest key kept for `table` (0 for none); `None` once the session stages in the
    /// tables.
    pub(super) fn max_id(&self, table: &str) -> Option<i64> {
        if self.spilled {
            return None;
        }
        let max = self
            .entries
            .get(table)
            .and_then(|rows| rows.keys().next_back());
        Some(max.copied().unwrap_or(0))
    }
}

/// Roughly the bytes `row` takes as JSON.
fn row_size(row: &Row) -> usize {
    row.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    serde_json::Value::String(text) => text.len() + 2,
                    serde_json::Value::Null | serde_json::Value::Bool(_) => 5,
                    serde_json::Value::Number(_) => 10,
                    other => other.to_string().len(),
                }
                + 2
        })
        .sum::<usize>()
        + 2
}
