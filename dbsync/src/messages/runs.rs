//! How a message's operations travel: as runs of consecutive keys.
//!
//! A push or a pull page holds up to thousands of operations, and most come in runs: one
//! table, one command, consecutive keys (a batch of inserts, a page of a table). Each run is
//! one array, `[table, command, first key, count]`, so that 10,000 inserts of one table are
//! 30 bytes instead of 500 KB of objects to write, compress and parse. The order is kept:
//! the runs are the operations in their order.

use super::WireOperation;
use crate::oplog::Command;
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserializer, Serializer};
use std::fmt;

/// The most operations one message may expand to: far above a page or a push (10,000 by
/// default), and a bound on what a short message can make a server allocate.
pub const MAX_OPERATIONS: u64 = 1_000_000;

/// The most bytes of table names one message may expand to: each operation holds its
/// table's name, so a long name in a long run would be copied for every key.
const MAX_NAME_BYTES: u64 = 64 << 20;

/// `operations` cut into maximal runs: one table, one command, consecutive keys.
pub fn runs(operations: &[WireOperation]) -> impl Iterator<Item = &[WireOperation]> {
    operations.chunk_by(|a, b| {
        a.table == b.table && a.command == b.command && a.row_id.checked_add(1) == Some(b.row_id)
    })
}

/// Writes `operations` as runs.
pub(super) fn serialize<S: Serializer>(
    operations: &[WireOperation],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let runs: Vec<(&str, Command, i64, u64)> = runs(operations)
        .map(|run| {
            (
                run[0].table.as_str(),
                run[0].command,
                run[0].row_id,
                run.len() as u64,
            )
        })
        .collect();
    let mut seq = serializer.serialize_seq(Some(runs.len()))?;
    for run in &runs {
        seq.serialize_element(run)?;
    }
    seq.end()
}

/// Reads runs back into operations, refusing a run that is empty, runs past the largest
/// key, or takes the message past [`MAX_OPERATIONS`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<WireOperation>, D::Error> {
    deserializer.deserialize_seq(Runs)
}

struct Runs;

impl<'de> Visitor<'de> for Runs {
    type Value = Vec<WireOperation>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of [table, command, first key, count] runs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut operations = Vec::new();
        let mut names = 0u64;
        while let Some((table, command, first, count)) =
            seq.next_element::<(String, Command, i64, u64)>()?
        {
            let total = (operations.len() as u64).checked_add(count);
            names = names.saturating_add(count.saturating_mul(table.len() as u64));
            if count == 0 || total.is_none_or(|t| t > MAX_OPERATIONS) || names > MAX_NAME_BYTES {
                return Err(A::Error::custom(format!(
                    "a run of {count} operations of a table named in {} bytes (at most \
                     {MAX_OPERATIONS} operations and {MAX_NAME_BYTES} bytes of names in all)",
                    table.len()
                )));
            }
            let last = i64::try_from(count - 1)
                .ok()
                .and_then(|n| first.checked_add(n))
                .ok_or_else(|| A::Error::custom(format!("a run of `{table}` past the last key")))?;
            operations.reserve(count as usize);
            for row_id in first..=last {
                operations.push(WireOperation {
                    table: table.clone(),
                    row_id,
                    command,
                });
            }
        }
        Ok(operations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Message {
        #[serde(with = "super")]
        operations: Vec<WireOperation>,
    }

    fn op(table: &str, row_id: i64, command: Command) -> WireOperation {
        WireOperation {
            table: table.into(),
            row_id,
            command,
        }
    }

    #[test]
    fn operations_travel_as_runs_in_their_order() {
        let mut operations: Vec<WireOperation> = (1..=1000)
            .map(|id| op("city", id, Command::Insert))
            .collect();
        operations.extend([
            op("person", 7, Command::Update),
            op("person", 8, Command::Update),
            op("person", 3, Command::Update),
            op("city", 1001, Command::Insert),
            op("city", 1002, Command::Delete),
            op("city", i64::MAX, Command::Insert),
            op("city", i64::MIN, Command::Insert),
        ]);
        let message = Message { operations };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(
            text,
            r#"{"operations":[["city","i",1,1000],["person","u",7,2],["person","u",3,1],["city","i",1001,1],["city","d",1002,1],["city","i",9223372036854775807,1],["city","i",-9223372036854775808,1]]}"#
        );
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), message);
    }

    #[test]
    fn runs_that_are_empty_too_long_or_past_the_last_key_are_refused() {
        for text in [
            r#"{"operations":[["city","i",1,0]]}"#,
            r#"{"operations":[["city","i",1,1000001]]}"#,
            r#"{"operations":[["city","i",1,600000],["city","i",1,400001]]}"#,
            r#"{"operations":[["city","i",9223372036854775807,2]]}"#,
            r#"{"operations":[["city","x",1,1]]}"#,
            r#"{"operations":[["city","i",1,-1]]}"#,
            r#"{"operations":[["city","i",1,1],["city","i",1,18446744073709551615]]}"#,
            r#"{"operations":[{"table":"city","row_id":1,"command":"i"}]}"#,
        ] {
            assert!(serde_json::from_str::<Message>(text).is_err(), "{text}");
        }
        let long = "x".repeat(100);
        let names = format!(r#"{{"operations":[["{long}","i",1,700000]]}}"#);
        assert!(
            serde_json::from_str::<Message>(&names).is_err(),
            "70 MB of names"
        );
        let most = r#"{"operations":[["city","i",1,600000],["city","i",1,400000]]}"#;
        let parsed = serde_json::from_str::<Message>(most).unwrap();
        assert_eq!(parsed.operations.len() as u64, MAX_OPERATIONS);
    }
}
