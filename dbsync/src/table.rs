//! What dbsync knows about one tracked table, read from SeaORM's entity metadata.

use crate::table_ops::{Handle, TableOps};
use crate::tracked::{Direction, Tracked};
use sea_orm::sea_query::{ForeignKeyAction, TableRef};
use sea_orm::{
    ColumnTrait, ColumnType, DbBackend, IdenStatic, IntoActiveModel, Iterable, PrimaryKeyToColumn,
    PrimaryKeyTrait, RelationTrait, Schema,
};

/// A tracked table as dbsync sees it: enough to install change capture, order writes by
/// foreign key and detect unique-constraint conflicts, without the Rust type.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableInfo {
    /// The table name.
    pub name: String,
    /// The stable id of the table in operations (see [`Tracked::CONTENT_TYPE_ID`]).
    pub content_type_id: u32,
    /// Which way changes travel.
    pub direction: Direction,
    /// The primary-key column.
    pub primary_key: String,
    /// Whether the database generates the primary key.
    pub auto_increment: bool,
    /// Every column, in entity order.
    pub columns: Vec<ColumnInfo>,
    /// Unique constraints, single-column and composite, each as its column names.
    pub unique: Vec<Vec<String>>,
    /// Foreign keys held by this table.
    pub foreign_keys: Vec<ForeignKey>,
    ops: OpsRef,
}

/// Makes [`TableInfo`] comparable and printable as metadata: every table of one entity has the
/// same operations.
#[derive(Clone, Copy)]
struct OpsRef(&'static dyn TableOps);

impl PartialEq for OpsRef {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for OpsRef {}

impl std::fmt::Debug for OpsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableOps")
    }
}

/// One column of a tracked table.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnInfo {
    /// The column name in the database.
    pub name: String,
    /// Whether it accepts `NULL`.
    pub nullable: bool,
    /// Whether it holds JSON in a type without an equality operator (PostgreSQL `json`).
    pub json: bool,
}

/// A foreign key from a tracked table, as declared by the entity's relations.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForeignKey {
    /// The referencing columns.
    pub columns: Vec<String>,
    /// The referenced table.
    pub to_table: String,
    /// The referenced columns.
    pub to_columns: Vec<String>,
    /// What the database does to this row when the referenced row is deleted.
    pub on_delete: Option<FkAction>,
}

impl ForeignKey {
    /// The referencing column, when this key is one column pointing at `primary_key` of the
    /// referenced table: the only kind whose value follows a row moved to a new key.
    ///
    /// ```
    /// # use dbsync::ForeignKey;
    /// # fn check(fk: &ForeignKey) {
    /// if let Some(column) = fk.key_column("id") {
    ///     println!("{column} holds an id of `{}`", fk.to_table);
    /// }
    /// # }
    /// ```
    pub fn key_column(&self, primary_key: &str) -> Option<&str> {
        match (&self.columns[..], &self.to_columns[..]) {
            ([column], [to]) if to == primary_key => Some(column),
            _ => None,
        }
    }
}

/// A referential action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FkAction {
    /// Delete or update along with the referenced row.
    Cascade,
    /// Set the referencing columns to `NULL`.
    SetNull,
    /// Set the referencing columns to their default.
    SetDefault,
    /// Refuse the change.
    Restrict,
    /// Refuse the change at the end of the statement.
    NoAction,
}

impl TableInfo {
    /// Reads the metadata of entity `E`.
    pub fn of<E>() -> TableInfo
    where
        E: Tracked + Default,
        E::Model: IntoActiveModel<E::ActiveModel> + Send + Sync,
        E::ActiveModel: Send + Sync,
    {
        let entity = E::default();
        let primary_key = E::PrimaryKey::iter()
            .next()
            .map(|key| key.into_column().as_str().to_owned())
            .unwrap_or_default();
        let columns = E::Column::iter()
            .map(|column| {
                let def = column.def();
                ColumnInfo {
                    name: column.as_str().to_owned(),
                    nullable: def.is_null(),
                    json: matches!(def.get_column_type(), ColumnType::Json),
                }
            })
            .collect();
        let mut unique: Vec<Vec<String>> = E::Column::iter()
            .filter(|column| column.def().is_unique())
            .map(|column| vec![column.as_str().to_owned()])
            .collect();
        for index in Schema::new(DbBackend::Sqlite).create_index_from_entity(entity) {
            let names = index.get_index_spec().get_column_names();
            if index.is_unique_key() && !unique.contains(&names) {
                unique.push(names);
            }
        }
        let foreign_keys = E::Relation::iter()
            .map(|relation| relation.def())
            .filter(|def| !def.is_owner && !def.skip_fk)
            .map(|def| ForeignKey {
                columns: def.from_col.iter().map(ToString::to_string).collect(),
                to_table: table_ref_name(&def.to_tbl),
                to_columns: def.to_col.iter().map(ToString::to_string).collect(),
                on_delete: def.on_delete.map(FkAction::from),
            })
            .collect();
        TableInfo {
            name: entity.table_name().to_owned(),
            content_type_id: E::CONTENT_TYPE_ID,
            direction: E::DIRECTION,
            primary_key,
            auto_increment: <E::PrimaryKey as PrimaryKeyTrait>::auto_increment(),
            columns,
            unique,
            foreign_keys,
            ops: OpsRef(const { &Handle::<E>::NEW }),
        }
    }

    /// Operations on the table's rows in JSON form, for code that knows the table only by name.
    pub fn ops(&self) -> &'static dyn TableOps {
        self.ops.0
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn table_ref_name(table: &TableRef) -> String {
    match table {
        TableRef::Table(name, _) => name.1.to_string(),
        _ => String::new(),
    }
}

impl From<ForeignKeyAction> for FkAction {
    fn from(action: ForeignKeyAction) -> Self {
        match action {
            ForeignKeyAction::Cascade => FkAction::Cascade,
            ForeignKeyAction::SetNull => FkAction::SetNull,
            ForeignKeyAction::SetDefault => FkAction::SetDefault,
            ForeignKeyAction::Restrict => FkAction::Restrict,
            ForeignKeyAction::NoAction => FkAction::NoAction,
            // Newer sea-query actions behave like refusing until dbsync learns them.
            _ => FkAction::NoAction,
        }
    }
}
