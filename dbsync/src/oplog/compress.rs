//! Compression: the net effect of a row's operations, one operation per row.

use super::{Command, Operation};
use std::collections::HashMap;

/// Reduces `ops` to at most one operation per row, the net change, ordered by `seq`.
///
/// For the operations on one row, oldest first (python-sync-db's local rules, extended to
/// the sequences it left alone):
///
/// | sequence | result |
/// |---|---|
/// | one operation | kept |
/// | `i, u*` | the `i` |
/// | `i, …, d` | nothing: the server never saw the row |
/// | `u, u*` | the last `u` |
/// | `u, …, d` | the `d` |
/// | `d, …, d` | the last `d` |
/// | `d, …, i` or `d, …, u` | a `u` at the last position: the row exists on the server and here |
///
/// An `i` keeps its position, so a row is created no later than it was; every other result
/// takes the position of the row's last operation.
///
/// ```
/// use dbsync::{Command::*, Operation, compress};
/// let op = |seq, row_id, command| Operation { seq, content_type_id: 7, row_id, command };
/// let log = [op(1, 1, Insert), op(2, 1, Update), op(3, 2, Update), op(4, 2, Delete)];
/// assert_eq!(compress(&log), [op(1, 1, Insert), op(4, 2, Delete)]);
/// ```
pub fn compress(ops: &[Operation]) -> Vec<Operation> {
    let mut sorted: Vec<&Operation> = ops.iter().collect();
    sorted.sort_by_key(|op| op.seq);
    let mut rows: HashMap<(u32, i64), (Operation, Operation)> = HashMap::new();
    for op in sorted {
        rows.entry((op.content_type_id, op.row_id))
            .and_modify(|(_, last)| *last = *op)
            .or_insert((*op, *op));
    }
    let mut out: Vec<Operation> = rows
        .into_values()
        .filter_map(|(first, last)| net(first, last))
        .collect();
    out.sort_by_key(|op| op.seq);
    out
}

fn net(first: Operation, last: Operation) -> Option<Operation> {
    use Command::*;
    if first.seq == last.seq {
        return Some(first);
    }
    match (first.command, last.command) {
        (Insert, Delete) => None,
        (Insert, _) => Some(first),
        (_, Delete) => Some(last),
        (Update, _) | (Delete, _) => Some(Operation {
            command: Update,
            ..last
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    fn log(commands: &[(i64, Command)]) -> Vec<Operation> {
        commands
            .iter()
            .enumerate()
            .map(|(i, &(row_id, command))| Operation {
                seq: i as i64 + 1,
                content_type_id: 1,
                row_id,
                command,
            })
            .collect()
    }

    fn net_commands(commands: &[(i64, Command)]) -> Vec<(i64, i64, Command)> {
        compress(&log(commands))
            .into_iter()
            .map(|op| (op.seq, op.row_id, op.command))
            .collect()
    }

    #[test]
    fn a_single_operation_is_kept() {
        assert_eq!(net_commands(&[(1, Update)]), [(1, 1, Update)]);
    }

    #[test]
    fn insert_then_updates_becomes_the_insert() {
        assert_eq!(
            net_commands(&[(1, Insert), (1, Update), (1, Update)]),
            [(1, 1, Insert)]
        );
    }

    #[test]
    fn insert_updates_then_delete_vanishes() {
        assert_eq!(net_commands(&[(1, Insert), (1, Update), (1, Delete)]), []);
        assert_eq!(net_commands(&[(1, Insert), (1, Delete)]), []);
    }

    #[test]
    fn updates_become_the_last_update() {
        assert_eq!(
            net_commands(&[(1, Update), (2, Insert), (1, Update)]),
            [(2, 2, Insert), (3, 1, Update)]
        );
    }

    #[test]
    fn updates_then_delete_become_the_delete() {
        assert_eq!(
            net_commands(&[(1, Update), (1, Update), (1, Delete)]),
            [(3, 1, Delete)]
        );
    }

    #[test]
    fn delete_then_reinsert_becomes_an_update() {
        assert_eq!(net_commands(&[(1, Delete), (1, Insert)]), [(2, 1, Update)]);
        assert_eq!(
            net_commands(&[(1, Delete), (1, Insert), (1, Delete)]),
            [(3, 1, Delete)]
        );
    }

    #[test]
    fn rows_of_different_tables_with_the_same_key_stay_apart() {
        let mut ops = log(&[(1, Insert), (1, Delete)]);
        ops[1].content_type_id = 2;
        assert_eq!(compress(&ops), ops);
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut ops = log(&[(1, Insert), (1, Update), (2, Update), (2, Delete)]);
        ops.reverse();
        assert_eq!(
            compress(&ops).iter().map(|o| o.command).collect::<Vec<_>>(),
            [Insert, Delete]
        );
    }
}
