//! The merge: how a pull combines the server's changes with the node's unsynced ones.
//!
//! The goal: the node ends in the state it would have reached had it applied the server's
//! changes first and then made its own, and no local change is lost silently. Deciding what
//! to do is a pure function ([`plan`]) from the local operations, the server's changes and
//! the local rows they involve, so every rule is testable without a database; the client
//! then carries the plan out in one transaction. `docs/merge.md` states the rules.

mod plan;
mod policy;

pub use plan::{ConflictKind, RemoteChange, Step, decide, plan};
pub use policy::{ConflictPolicy, ConflictRows, Resolution, ResolvedConflict};
