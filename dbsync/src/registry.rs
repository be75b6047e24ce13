//! The set of tracked tables: found automatically from every `#[derive(Tracked)]` in the
//! program, or listed explicitly.

use crate::error::{Error, Result};
use crate::table::TableInfo;
use crate::tracked::Tracked;
use sea_orm::IntoActiveModel;
use std::sync::OnceLock;

/// One tracked entity, submitted by `#[derive(Tracked)]` at compile time.
#[doc(hidden)]
#[derive(Debug)]
pub struct Registration {
    describe: fn() -> TableInfo,
}

impl Registration {
    /// The registration of entity `E`.
    pub const fn of<E>() -> Self
    where
        E: Tracked + Default,
        E::Model: IntoActiveModel<E::ActiveModel> + Send + Sync,
        E::ActiveModel: Send + Sync,
    {
        Registration {
            describe: TableInfo::of::<E>,
        }
    }
}

inventory::collect!(Registration);

/// The tracked tables dbsync works on, ordered so that every table comes after the tables
/// its foreign keys point to.
///
/// [`Registry::global`] holds every entity with `#[derive(Tracked)]` linked into the program;
/// build one by hand with [`Registry::new`] and [`Registry::register`] to track a subset.
///
/// ```standalone_crate
/// # use sea_orm::entity::prelude::*;
/// # mod city {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
/// #     #[sea_orm(table_name = "city")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub name: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// let registry = dbsync::Registry::new().register::<city::Entity>()?;
/// assert_eq!(registry.tables()[0].name, "city");
/// assert!(dbsync::Registry::global().table("city").is_some());
/// # Ok::<(), dbsync::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    tables: Vec<TableInfo>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Every `#[derive(Tracked)]` entity in the program.
    ///
    /// Two entities on one table, or two tables with one content-type id, cannot be refused
    /// at link time: [`Registry::validate`] (run by [`crate::create_all`]) reports them.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let mut tables: Vec<TableInfo> = inventory::iter::<Registration>
                .into_iter()
                .map(|registration| (registration.describe)())
                .collect();
            // Link order is arbitrary; sorting makes the dependency order reproducible.
            tables.sort_by(|a, b| a.name.cmp(&b.name));
            Registry::from_tables(tables)
        })
    }

    /// Adds entity `E`.
    pub fn register<E>(self) -> Result<Self>
    where
        E: Tracked + Default,
        E::Model: IntoActiveModel<E::ActiveModel> + Send + Sync,
        E::ActiveModel: Send + Sync,
    {
        self.insert(TableInfo::of::<E>())
    }

    fn insert(mut self, table: TableInfo) -> Result<Self> {
        for existing in &self.tables {
            if existing.name == table.name {
                return Err(Error::DuplicateTable { table: table.name });
            }
        }
        self.tables.push(table);
        Ok(Registry::from_tables(self.tables))
    }

    fn from_tables(tables: Vec<TableInfo>) -> Self {
        Registry {
            tables: dependency_order(tables),
        }
    }

    /// Checks what [`Registry::global`] cannot refuse at link time: that every table is
    /// registered once and has its own content-type id.
    pub fn validate(&self) -> Result<()> {
        for (i, a) in self.tables.iter().enumerate() {
            for b in &self.tables[i + 1..] {
                if a.name == b.name {
                    return Err(Error::DuplicateTable {
                        table: a.name.clone(),
                    });
                }
                if a.content_type_id == b.content_type_id {
                    return Err(Error::ContentTypeClash {
                        first: a.name.clone(),
                        second: b.name.clone(),
                        id: a.content_type_id,
                    });
                }
            }
        }
        Ok(())
    }

    /// The tables that satisfy `keep`, in the same order.
    pub(crate) fn subset(&self, keep: impl Fn(&TableInfo) -> bool) -> Registry {
        Registry {
            tables: self.tables.iter().filter(|t| keep(t)).cloned().collect(),
        }
    }

    /// The tables, parents before children.
    pub fn tables(&self) -> &[TableInfo] {
        &self.tables
    }

    /// The tables whose server changes nodes pull, parents first.
    pub fn pulled(&self) -> impl DoubleEndedIterator<Item = &TableInfo> {
        self.tables.iter().filter(|t| t.direction.pulls())
    }

    /// The table with this name.
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The table with this content-type id.
    pub fn by_content_type(&self, id: u32) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.content_type_id == id)
    }
}

/// Orders tables so that referenced tables come first. Cycles (including self references)
/// cannot be ordered; their members keep their relative order, and writes to them rely on
/// deferred constraint checks instead.
fn dependency_order(mut pending: Vec<TableInfo>) -> Vec<TableInfo> {
    let mut ordered: Vec<TableInfo> = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|table| {
            table.foreign_keys.iter().all(|fk| {
                fk.to_table == table.name
                    || ordered.iter().any(|done| done.name == fk.to_table)
                    || !pending.iter().any(|p| p.name == fk.to_table)
            })
        });
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered
}
