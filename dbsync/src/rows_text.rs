//! Checking rows that arrive as JSON text against a table's columns, without decoding them.
//!
//! A snapshot page is written from its text by the database's JSON functions
//! (`table_json.rs`), which would take a string for a number, a missing column for `NULL` or
//! ignore an extra key. The text is checked first, in one pass of serde's parser that
//! allocates nothing per row: SQLite's own JSON functions took longer to check a page than
//! to write it. The same pass can collect the values, in column order, for a statement to
//! bind: SQLite writes bound rows about twice as fast as it reads them out of JSON text.

use sea_orm::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;

/// How a column's values look in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An integer within the column type's range.
    Int {
        /// The smallest value the column holds.
        min: i64,
        /// The largest.
        max: i64,
    },
    /// A string.
    Text,
}

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Int { .. } => "null or an integer in range",
            Kind::Text => "null or a string",
        }
    }
}

/// Why a page's text was refused: the column at fault when there is one, and the reason.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) column: String,
    pub(crate) reason: String,
}

/// Checks that `json` is an array of objects that hold every one of `columns` exactly once
/// and nothing else, each value `null` or of its column's kind. Returns the number of rows.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn check_rows(columns: &[(String, Kind)], json: &str) -> Result<usize, Refusal> {
    read_rows(columns, json, None)
}

/// [`check_rows`], returning every row's values in column order, one after the other.
pub(crate) fn row_values(columns: &[(String, Kind)], json: &str) -> Result<Vec<Value>, Refusal> {
    let mut values = Vec::new();
    read_rows(columns, json, Some(&mut values))?;
    Ok(values)
}

/// The value binding `null` in a column of `kind`.
pub(crate) fn null(kind: Kind) -> Value {
    match kind {
        Kind::Int { .. } => Value::BigInt(None),
        Kind::Text => Value::String(None),
    }
}

fn read_rows(
    columns: &[(String, Kind)],
    json: &str,
    values: Option<&mut Vec<Value>>,
) -> Result<usize, Refusal> {
    let fault = RefCell::new(String::new());
    let values = values.map(RefCell::new);
    let rows = Rows {
        columns,
        fault: &fault,
        values: values.as_ref(),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let result = rows.deserialize(&mut de).and_then(|n| de.end().map(|()| n));
    result.map_err(|err| Refusal {
        column: fault.take(),
        reason: err.to_string(),
    })
}

/// The page: an array of rows.
#[derive(Clone, Copy)]
struct Rows<'c> {
    columns: &'c [(String, Kind)],
    /// The column of the first fault, for the error.
    fault: &'c RefCell<String>,
    /// Where the values go, when they are wanted.
    values: Option<&'c RefCell<&'c mut Vec<Value>>>,
}

impl<'de> DeserializeSeed<'de> for Rows<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut seen = vec![false; self.columns.len()];
        let mut count = 0;
        while seq
            .next_element_seed(Object {
                rows: self,
                seen: &mut seen,
                index: count,
            })?
            .is_some()
        {
            count += 1;
        }
        Ok(count)
    }
}

/// One row: an object of the table's columns.
struct Object<'r, 'c> {
    rows: Rows<'c>,
    /// Which columns the row gave so far, reused from row to row.
    seen: &'r mut Vec<bool>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for Object<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {} to be an object of the table's columns",
            self.index
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Object { rows, seen, index } = self;
        seen.iter_mut().for_each(|s| *s = false);
        let base = rows.values.map(|values| {
            let mut values = values.borrow_mut();
            let base = values.len();
            values.extend(rows.columns.iter().map(|(_, kind)| null(*kind)));
            base
        });
        let fail = |column: &str, reason: String| {
            *rows.fault.borrow_mut() = column.to_owned();
            de::Error::custom(format!("row {index}: {reason}"))
        };
        while let Some(at) = map.next_key_seed(Column(rows))? {
            let (name, kind) = &rows.columns[at];
            if std::mem::replace(&mut seen[at], true) {
                return Err(fail(name, format!("column `{name}` given twice")));
            }
            let value = map.next_value_seed(Field {
                kind: *kind,
                name,
                index,
                fault: rows.fault,
            })?;
            if let (Some(values), Some(base), Some(value)) = (rows.values, base, value) {
                values.borrow_mut()[base + at] = value;
            }
        }
        if let Some(at) = seen.iter().position(|s| !s) {
            let name = &rows.columns[at].0;
            return Err(fail(name, format!("column `{name}` missing")));
        }
        Ok(())
    }
}

/// A key of a row: the position of its column.
struct Column<'c>(Rows<'c>);

impl<'de> DeserializeSeed<'de> for Column<'_> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Column<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<usize, E> {
        self.0
            .columns
            .iter()
            .position(|(name, _)| name == key)
            .ok_or_else(|| {
                *self.0.fault.borrow_mut() = key.to_owned();
                E::custom(format!("`{key}` is not a column of this table"))
            })
    }
}

/// A value, checked against its column's kind.
struct Field<'c> {
    kind: Kind,
    name: &'c str,
    index: usize,
    fault: &'c RefCell<String>,
}

impl Field<'_> {
    fn refuse<E: de::Error>(&self, got: fmt::Arguments<'_>) -> E {
        *self.fault.borrow_mut() = self.name.to_owned();
        E::custom(format!(
            "row {}: column `{}`: expected {}, got {got}",
            self.index,
            self.name,
            self.kind.expected()
        ))
    }
}

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<Value>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        match self.kind {
            Kind::Int { min, max } if (min..=max).contains(&v) => Ok(Some(Value::BigInt(Some(v)))),
            _ => Err(self.refuse(format_args!("{v}"))),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(self.refuse(format_args!("{v}"))),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<Value>, E> {
        Err(self.refuse(format_args!("{v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        match self.kind {
            Kind::Text => Ok(Some(Value::String(Some(v.to_owned())))),
            Kind::Int { .. } => Err(self.refuse(format_args!("{v:?}"))),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Err(self.refuse(format_args!("{v}")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Option<Value>, A::Error> {
        Err(self.refuse(format_args!("an array")))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Option<Value>, A::Error> {
        Err(self.refuse(format_args!("an object")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn city() -> Vec<(String, Kind)> {
        vec![
            (
                "id".into(),
                Kind::Int {
                    min: i64::from(i32::MIN),
                    max: i64::from(i32::MAX),
                },
            ),
            ("name".into(), Kind::Text),
        ]
    }

    #[test]
    fn counts_rows_of_the_right_shape() {
        let text = r#"[{"id": 1, "name": "Lyon"}, {"name": "Nice \"N\"", "id": 2}, {"id": null, "name": null}]"#;
        assert_eq!(check_rows(&city(), text), Ok(3));
        assert_eq!(check_rows(&city(), "[]"), Ok(0));
    }

    #[test]
    fn gives_the_values_in_column_order() {
        let text = r#"[{"name": "Lyon", "id": 1}, {"id": 2, "name": null}]"#;
        assert_eq!(
            row_values(&city(), text).unwrap(),
            [
                Value::BigInt(Some(1)),
                Value::String(Some("Lyon".into())),
                Value::BigInt(Some(2)),
                Value::String(None),
            ]
        );
    }

    #[test]
    fn names_the_column_at_fault() {
        for (text, column) in [
            (r#"[{"id": 1}]"#, "name"),
            (r#"[{"id": 1, "name": "X", "extra": 1}]"#, "extra"),
            (r#"[{"id": 1, "name": "X", "id": 2}]"#, "id"),
            (r#"[{"id": "1", "name": "X"}]"#, "id"),
            (r#"[{"id": 1.5, "name": "X"}]"#, "id"),
            (r#"[{"id": 2147483648, "name": "X"}]"#, "id"),
            (r#"[{"id": 18446744073709551615, "name": "X"}]"#, "id"),
            (r#"[{"id": 1, "name": 7}]"#, "name"),
            (r#"[{"id": 1, "name": true}]"#, "name"),
            (r#"[{"id": 1, "name": ["X"]}]"#, "name"),
            (r#"[{"id": 1, "name": {"a": 1}}]"#, "name"),
        ] {
            let refusal = check_rows(&city(), text).unwrap_err();
            assert_eq!(refusal.column, column, "{text}: {refusal:?}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_array_of_objects() {
        for text in [
            r#"[[1, "X"]]"#,
            r#"{"id": 1, "name": "X"}"#,
            r#"[{"id": 1, "name": "X"}] trailing"#,
            r#"[{"id": 1, "name": "X"}"#,
            "",
            "[1]",
        ] {
            assert!(check_rows(&city(), text).is_err(), "{text}");
        }
    }
}
