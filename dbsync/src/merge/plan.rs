//! Conflict detection: what to do with each server change, given the node's unsynced
//! operations.

use crate::oplog::{Command, Operation, compress};
use std::collections::{HashMap, HashSet};

/// One server change to one row, as the merge sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteChange {
    /// The table, by content-type id.
    pub content_type_id: u32,
    /// The row's primary key.
    pub row_id: i64,
    /// The server's net change; `None` for a row the server sent only because another row
    /// references it (it exists on the server, perhaps unchanged).
    pub command: Option<Command>,
}

/// The kinds of conflict between a server change and a local one (python-sync-db's four).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConflictKind {
    /// Both sides changed the same row.
    Direct {
        /// The server's change.
        server: Command,
        /// The local change.
        local: Command,
    },
    /// The server deleted a row that local rows with unsynced changes reference.
    Dependency,
    /// The node deleted a row that the server's rows need.
    ReversedDependency,
    /// Both sides inserted a row under the same key.
    Insert,
}

/// What to do with one server change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// No conflict: write the server's change.
    Apply,
    /// No conflict and nothing to write: the row is as the node has it, or will be pushed.
    Skip,
    /// Both sides updated the row (or the server deleted what the node updated): the
    /// conflict policy decides; by default the local change wins and is pushed.
    Resolve(ConflictKind),
    /// The server changed or needs a row the node deleted: the row comes back with the
    /// server's values and the local delete is dropped.
    Restore(ConflictKind),
    /// Both sides deleted the row: the local delete is dropped, nothing is left to send.
    DropLocal,
    /// Both sides inserted under this key: the local row moves to a fresh key with every local
    /// reference to it, then the server's row is written.
    MoveLocalThenApply,
    /// The server deleted a parent of local rows with unsynced changes: the parent stays
    /// and the next push re-creates it on the server before them.
    KeepParent,
}

impl Step {
    /// The conflict this step resolves, if any.
    pub fn conflict(self) -> Option<ConflictKind> {
        match self {
            Step::Resolve(kind) | Step::Restore(kind) => Some(kind),
            Step::DropLocal => Some(ConflictKind::Direct {
                server: Command::Delete,
                local: Command::Delete,
            }),
            Step::MoveLocalThenApply => Some(ConflictKind::Insert),
            Step::KeepParent => Some(ConflictKind::Dependency),
            Step::Apply | Step::Skip => None,
        }
    }
}

/// Decides one server change against the local net change of the same row (`None`: no
/// unsynced change) and whether local rows with unsynced changes reference it.
///
/// ```
/// use dbsync::Command::*;
/// use dbsync::merge::{ConflictKind, Step, decide};
/// assert_eq!(decide(Some(Update), Some(Update), false),
///            Step::Resolve(ConflictKind::Direct { server: Update, local: Update }));
/// assert_eq!(decide(Some(Delete), None, true), Step::KeepParent);
/// ```
pub fn decide(
    server: Option<Command>,
    local: Option<Command>,
    referenced_by_unsynced: bool,
) -> Step {
    use Command::*;
    match (server, local) {
        // Whatever the server did with this key, it used it: a row the node inserted under
        // it is another row and must move, or it would take the key of a deleted one.
        (Some(_), Some(Insert)) => Step::MoveLocalThenApply,
        (Some(Delete), None) if referenced_by_unsynced => Step::KeepParent,
        (Some(Delete), None) => Step::Apply,
        (Some(Delete), Some(Delete)) => Step::DropLocal,
        (Some(Delete), Some(local)) => Step::Resolve(ConflictKind::Direct {
            server: Delete,
            local,
        }),
        (_, None) => Step::Apply,
        // A row the node inserted, under a key the server gave another row.
        (_, Some(Insert)) => Step::MoveLocalThenApply,
        (Some(server), Some(Update)) => Step::Resolve(ConflictKind::Direct {
            server,
            local: Update,
        }),
        // Sent only as a parent: the server may not have changed it; the local update stands.
        (None, Some(Update)) => Step::Skip,
        (Some(server), Some(Delete)) => Step::Restore(ConflictKind::Direct {
            server,
            local: Delete,
        }),
        (None, Some(Delete)) => Step::Restore(ConflictKind::ReversedDependency),
    }
}

/// Plans a merge: the step for each server change, in the order given.
///
/// `local` is the node's unsynced log (compressed here); `referenced` holds the rows
/// (content type, key) that local rows with unsynced changes reference through a foreign
/// key, which is what the merge needs to see a dependency conflict.
pub fn plan(
    local: &[Operation],
    remote: &[RemoteChange],
    referenced: &HashSet<(u32, i64)>,
) -> Vec<(RemoteChange, Step)> {
    let local: HashMap<(u32, i64), Command> = compress(local)
        .into_iter()
        .map(|op| ((op.content_type_id, op.row_id), op.command))
        .collect();
    remote
        .iter()
        .map(|change| {
            let key = (change.content_type_id, change.row_id);
            let step = decide(
                change.command,
                local.get(&key).copied(),
                referenced.contains(&key),
            );
            (*change, step)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    const CITY: u32 = 1;
    const PERSON: u32 = 2;

    fn op(seq: i64, content_type_id: u32, row_id: i64, command: Command) -> Operation {
        Operation {
            seq,
            content_type_id,
            row_id,
            command,
        }
    }

    fn change(content_type_id: u32, row_id: i64, command: Option<Command>) -> RemoteChange {
        RemoteChange {
            content_type_id,
            row_id,
            command,
        }
    }

    fn step_for(local: &[Operation], remote: RemoteChange, referenced: &[(u32, i64)]) -> Step {
        let referenced = referenced.iter().copied().collect();
        plan(local, &[remote], &referenced)[0].1
    }

    #[test]
    fn a_server_change_to_a_row_without_local_changes_is_applied() {
        for command in [Insert, Update, Delete] {
            assert_eq!(
                step_for(&[], change(CITY, 1, Some(command)), &[]),
                Step::Apply
            );
        }
        assert_eq!(step_for(&[], change(CITY, 1, None), &[]), Step::Apply);
    }

    #[test]
    fn update_against_local_update_goes_to_the_policy() {
        let local = [op(1, CITY, 1, Update)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Update)), &[]),
            Step::Resolve(ConflictKind::Direct {
                server: Update,
                local: Update
            })
        );
    }

    #[test]
    fn remote_delete_against_local_update_goes_to_the_policy() {
        let local = [op(1, CITY, 1, Update)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Delete)), &[]),
            Step::Resolve(ConflictKind::Direct {
                server: Delete,
                local: Update
            })
        );
    }

    #[test]
    fn remote_update_of_a_locally_deleted_row_restores_it() {
        let local = [op(1, CITY, 1, Update), op(2, CITY, 1, Delete)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Update)), &[]),
            Step::Restore(ConflictKind::Direct {
                server: Update,
                local: Delete
            })
        );
    }

    #[test]
    fn delete_against_delete_drops_the_local_delete() {
        let local = [op(1, CITY, 1, Delete)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Delete)), &[]),
            Step::DropLocal
        );
    }

    #[test]
    fn insert_against_insert_moves_the_local_row() {
        let local = [op(1, CITY, 3, Insert), op(2, CITY, 3, Update)];
        assert_eq!(
            step_for(&local, change(CITY, 3, Some(Insert)), &[]),
            Step::MoveLocalThenApply
        );
    }

    #[test]
    fn a_local_insert_under_a_key_the_server_deleted_moves() {
        let local = [op(1, CITY, 3, Insert)];
        assert_eq!(
            step_for(&local, change(CITY, 3, Some(Delete)), &[]),
            Step::MoveLocalThenApply
        );
    }

    #[test]
    fn remote_delete_of_parent_with_local_child_insert_keeps_the_parent() {
        let local = [op(1, PERSON, 9, Insert)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Delete)), &[(CITY, 1)]),
            Step::KeepParent
        );
    }

    #[test]
    fn local_delete_of_a_parent_the_server_needs_restores_it() {
        let local = [op(1, CITY, 1, Delete)];
        assert_eq!(
            step_for(&local, change(CITY, 1, None), &[]),
            Step::Restore(ConflictKind::ReversedDependency)
        );
    }

    #[test]
    fn a_parent_sent_for_reference_does_not_override_a_local_update() {
        let local = [op(1, CITY, 1, Update)];
        assert_eq!(step_for(&local, change(CITY, 1, None), &[]), Step::Skip);
    }

    #[test]
    fn rows_of_other_tables_with_the_same_key_do_not_conflict() {
        let local = [op(1, PERSON, 1, Update)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Update)), &[]),
            Step::Apply
        );
    }

    #[test]
    fn a_local_insert_then_delete_is_no_conflict() {
        let local = [op(1, CITY, 1, Insert), op(2, CITY, 1, Delete)];
        assert_eq!(
            step_for(&local, change(CITY, 1, Some(Insert)), &[]),
            Step::Apply
        );
    }

    #[test]
    fn every_conflicting_step_names_its_conflict() {
        assert_eq!(Step::KeepParent.conflict(), Some(ConflictKind::Dependency));
        assert_eq!(
            Step::MoveLocalThenApply.conflict(),
            Some(ConflictKind::Insert)
        );
        assert_eq!(Step::Apply.conflict(), None);
    }
}
