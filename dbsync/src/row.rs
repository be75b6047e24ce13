//! Lossless conversion between a model and its JSON form, the form rows travel in.
//!
//! Each column is encoded from SeaORM's [`Value`], so the JSON does not depend on the model's
//! serde derives, and decoded against the column's value type (see
//! [`Tracked::column_templates`]), so nothing is guessed from the JSON alone:
//!
//! | value type | JSON |
//! |---|---|
//! | integers, `bool` | number, boolean |
//! | `f32`, `f64` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` for the non-finite ones |
//! | `String`, `char`, enums | string |
//! | decimal | string, scale kept (`"12.50"`) |
//! | bytes | base64 string |
//! | JSON | the JSON text as a string (so SQL `NULL` and JSON `null` stay apart) |
//! | dates and times | ISO 8601 / RFC 3339 strings, full precision, offset kept |
//! | uuid | hyphenated string |
//! | SQL `NULL` | `null` |

use crate::error::{Error, Result};
use crate::tracked::Tracked;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sea_orm::sea_query::{Enum, OptionEnum};
use sea_orm::{ActiveModelTrait, IdenStatic, Iterable, ModelTrait, TryIntoModel, Value};
use serde_json::Value as Json;

/// A row in its JSON form: column name to encoded value.
pub type Row = serde_json::Map<String, Json>;

/// Encodes a model as a [`Row`].
///
/// ```standalone_crate
/// # mod city {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
/// #     #[sea_orm(table_name = "city")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub name: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// let paris = city::Model { id: 1, name: "Paris".into() };
/// let row = dbsync::to_row::<city::Entity>(&paris);
/// assert_eq!(serde_json::Value::Object(row.clone()), serde_json::json!({"id": 1, "name": "Paris"}));
/// assert_eq!(dbsync::from_row::<city::Entity>(&row)?, paris);
/// # Ok::<(), dbsync::Error>(())
/// ```
pub fn to_row<E: Tracked>(model: &E::Model) -> Row {
    E::Column::iter()
        .map(|column| (column.as_str().to_owned(), encode(&model.get(column))))
        .collect()
}

/// Decodes a [`Row`] into a model. Every column must be present; a key that is not a column
/// of the table is refused.
pub fn from_row<E: Tracked>(row: &Row) -> Result<E::Model> {
    let table = E::default().table_name();
    let fail = |column: &str, reason: String| Error::RowCodec {
        table: table.to_owned(),
        column: column.to_owned(),
        reason,
    };
    let templates = E::column_templates();
    let mut model = <E::ActiveModel as ActiveModelTrait>::default();
    let mut used = 0;
    for (column, template) in E::Column::iter().zip(templates) {
        let name = column.as_str();
        let json = row
            .get(name)
            .ok_or_else(|| fail(name, "missing".to_owned()))?;
        used += 1;
        let value = decode(json, &template).map_err(|reason| fail(name, reason))?;
        model
            .try_set(column, value)
            .map_err(|err| fail(name, err.to_string()))?;
    }
    if used != row.len() {
        let unknown = row
            .keys()
            .find(|key| !E::Column::iter().any(|c| c.as_str() == key.as_str()))
            .cloned()
            .unwrap_or_default();
        return Err(fail(&unknown, "not a column of this table".to_owned()));
    }
    model
        .try_into_model()
        .map_err(|err| fail("", err.to_string()))
}

fn float(x: f64) -> Json {
    if x.is_nan() {
        Json::from("NaN")
    } else if x.is_infinite() {
        Json::from(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        Json::from(x)
    }
}

/// Encodes one value. Value kinds dbsync does not know (from SeaORM features it does not
/// enable) encode as their debug text, which decoding then refuses: never silently.
pub(crate) fn encode(value: &Value) -> Json {
    use chrono::SecondsFormat::AutoSi;
    fn opt<T>(v: &Option<T>, f: impl FnOnce(&T) -> Json) -> Json {
        v.as_ref().map_or(Json::Null, f)
    }
    match value {
        Value::Bool(v) => opt(v, |v| Json::from(*v)),
        Value::TinyInt(v) => opt(v, |v| Json::from(*v)),
        Value::SmallInt(v) => opt(v, |v| Json::from(*v)),
        Value::Int(v) => opt(v, |v| Json::from(*v)),
        Value::BigInt(v) => opt(v, |v| Json::from(*v)),
        Value::TinyUnsigned(v) => opt(v, |v| Json::from(*v)),
        Value::SmallUnsigned(v) => opt(v, |v| Json::from(*v)),
        Value::Unsigned(v) => opt(v, |v| Json::from(*v)),
        Value::BigUnsigned(v) => opt(v, |v| Json::from(*v)),
        Value::Float(v) => opt(v, |v| float(f64::from(*v))),
        Value::Double(v) => opt(v, |v| float(*v)),
        Value::String(v) => opt(v, |v| Json::from(v.as_str())),
        Value::Char(v) => opt(v, |v| Json::from(v.to_string())),
        Value::Enum(OptionEnum::Some(v)) => Json::from(v.value.as_ref()),
        Value::Enum(OptionEnum::None(_)) => Json::Null,
        Value::Bytes(v) => opt(v, |v| Json::from(BASE64.encode(v))),
        Value::Json(v) => opt(v, |v| Json::from(v.to_string())),
        Value::ChronoDate(v) => opt(v, |v| Json::from(v.format("%Y-%m-%d").to_string())),
        Value::ChronoTime(v) => opt(v, |v| Json::from(v.format("%H:%M:%S%.f").to_string())),
        Value::ChronoDateTime(v) => opt(v, |v| {
            Json::from(v.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }),
        Value::ChronoDateTimeUtc(v) => opt(v, |v| Json::from(v.to_rfc3339_opts(AutoSi, true))),
        Value::ChronoDateTimeLocal(v) => opt(v, |v| Json::from(v.to_rfc3339_opts(AutoSi, false))),
        Value::ChronoDateTimeWithTimeZone(v) => {
            opt(v, |v| Json::from(v.to_rfc3339_opts(AutoSi, false)))
        }
        Value::TimeDate(v) => opt(v, |v| time_text(v.format(&time_fmt::DATE))),
        Value::TimeTime(v) => opt(v, |v| time_text(v.format(&time_fmt::TIME))),
        Value::TimeDateTime(v) => opt(v, |v| time_text(v.format(&time_fmt::DATE_TIME))),
        Value::TimeDateTimeWithTimeZone(v) => opt(v, |v| {
            time_text(v.format(&time::format_description::well_known::Rfc3339))
        }),
        Value::Uuid(v) => opt(v, |v| Json::from(v.hyphenated().to_string())),
        Value::Decimal(v) => opt(v, |v| Json::from(v.to_string())),
        #[allow(unreachable_patterns)]
        other => Json::from(format!("{other:?}")),
    }
}

fn time_text(text: std::result::Result<String, time::error::Format>) -> Json {
    text.map_or(Json::Null, Json::from)
}

/// Formats for the `time` crate that keep every digit (its Display drops none either, but
/// has no parser).
mod time_fmt {
    use time::format_description::BorrowedFormatItem;
    use time::macros::format_description;
    pub const DATE: &[BorrowedFormatItem<'_>] =
        format_description!("[year sign:mandatory]-[month]-[day]");
    pub const TIME: &[BorrowedFormatItem<'_>] =
        format_description!("[hour]:[minute]:[second].[subsecond]");
    pub const DATE_TIME: &[BorrowedFormatItem<'_>] = format_description!(
        "[year sign:mandatory]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"
    );
}

/// Decodes one JSON value into the kind of `template` (a `NULL` of the column's type).
pub(crate) fn decode(json: &Json, template: &Value) -> std::result::Result<Value, String> {
    if json.is_null() {
        return Ok(template.clone());
    }
    let text = || {
        json.as_str()
            .ok_or_else(|| format!("expected a string, got {json}"))
    };
    fn int<T: TryFrom<i64> + TryFrom<u64>>(json: &Json) -> std::result::Result<T, String> {
        let out = if let Some(i) = json.as_i64() {
            T::try_from(i).ok()
        } else {
            json.as_u64().and_then(|u| T::try_from(u).ok())
        };
        out.ok_or_else(|| format!("expected an integer in range, got {json}"))
    }
    let float = || -> std::result::Result<f64, String> {
        match json {
            Json::Number(n) => n.as_f64().ok_or_else(|| format!("bad number {n}")),
            Json::String(s) if s == "NaN" => Ok(f64::NAN),
            Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
            Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(format!("expected a number, got {json}")),
        }
    };
    fn parsed<T, E: std::fmt::Display>(
        r: std::result::Result<T, E>,
    ) -> std::result::Result<T, String> {
        r.map_err(|e| e.to_string())
    }
    use time::format_description::well_known::Rfc3339;
    Ok(match template {
        Value::Bool(_) => Value::Bool(Some(
            json.as_bool()
                .ok_or_else(|| format!("expected a boolean, got {json}"))?,
        )),
        Value::TinyInt(_) => Value::TinyInt(Some(int(json)?)),
        Value::SmallInt(_) => Value::SmallInt(Some(int(json)?)),
        Value::Int(_) => Value::Int(Some(int(json)?)),
        Value::BigInt(_) => Value::BigInt(Some(int(json)?)),
        Value::TinyUnsigned(_) => Value::TinyUnsigned(Some(int(json)?)),
        Value::SmallUnsigned(_) => Value::SmallUnsigned(Some(int(json)?)),
        Value::Unsigned(_) => Value::Unsigned(Some(int(json)?)),
        Value::BigUnsigned(_) => Value::BigUnsigned(Some(int(json)?)),
        // An f32 widened to f64 and printed shortest-round-trip narrows back exactly.
        Value::Float(_) => Value::Float(Some(float()? as f32)),
        Value::Double(_) => Value::Double(Some(float()?)),
        Value::String(_) => Value::String(Some(text()?.to_owned())),
        Value::Char(_) => {
            let mut chars = text()?.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Value::Char(Some(c)),
                _ => return Err(format!("expected one character, got {json}")),
            }
        }
        Value::Enum(kind) => {
            let type_name = match kind {
                OptionEnum::None(name) => name.clone(),
                OptionEnum::Some(value) => value.type_name.clone(),
            };
            Value::Enum(OptionEnum::Some(Box::new(Enum {
                type_name,
                value: text()?.to_owned().into(),
            })))
        }
        Value::Bytes(_) => Value::Bytes(Some(parsed(BASE64.decode(text()?))?)),
        Value::Json(_) => Value::Json(Some(Box::new(parsed(serde_json::from_str(text()?))?))),
        Value::ChronoDate(_) => Value::ChronoDate(Some(parsed(
            chrono::NaiveDate::parse_from_str(text()?, "%Y-%m-%d"),
        )?)),
        Value::ChronoTime(_) => Value::ChronoTime(Some(parsed(
            chrono::NaiveTime::parse_from_str(text()?, "%H:%M:%S%.f"),
        )?)),
        Value::ChronoDateTime(_) => Value::ChronoDateTime(Some(parsed(
            chrono::NaiveDateTime::parse_from_str(text()?, "%Y-%m-%dT%H:%M:%S%.f"),
        )?)),
        Value::ChronoDateTimeUtc(_) => Value::ChronoDateTimeUtc(Some(
            parsed(chrono::DateTime::parse_from_rfc3339(text()?))?.with_timezone(&chrono::Utc),
        )),
        Value::ChronoDateTimeLocal(_) => Value::ChronoDateTimeLocal(Some(
            parsed(chrono::DateTime::parse_from_rfc3339(text()?))?.with_timezone(&chrono::Local),
        )),
        Value::ChronoDateTimeWithTimeZone(_) => Value::ChronoDateTimeWithTimeZone(Some(parsed(
            chrono::DateTime::parse_from_rfc3339(text()?),
        )?)),
        Value::TimeDate(_) => {
            Value::TimeDate(Some(parsed(time::Date::parse(text()?, &time_fmt::DATE))?))
        }
        Value::TimeTime(_) => {
            Value::TimeTime(Some(parsed(time::Time::parse(text()?, &time_fmt::TIME))?))
        }
        Value::TimeDateTime(_) => Value::TimeDateTime(Some(parsed(
            time::PrimitiveDateTime::parse(text()?, &time_fmt::DATE_TIME),
        )?)),
        Value::TimeDateTimeWithTimeZone(_) => Value::TimeDateTimeWithTimeZone(Some(parsed(
            time::OffsetDateTime::parse(text()?, &Rfc3339),
        )?)),
        Value::Uuid(_) => Value::Uuid(Some(parsed(uuid::Uuid::parse_str(text()?))?)),
        Value::Decimal(_) => {
            Value::Decimal(Some(parsed(text()?.parse::<rust_decimal::Decimal>())?))
        }
        #[allow(unreachable_patterns)]
        other => return Err(format!("dbsync cannot decode values of kind {other:?}")),
    })
}
