//! `create_all` and `drop_all`: dbsync's own tables and the capture on tracked tables.

use crate::capture::{self, quote};
use crate::error::{Error, Result};
use crate::registry::Registry;
use crate::table::TableInfo;
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionSession, TransactionTrait, Value};

/// Which side of the sync a database is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A node: local writes are recorded only on tables whose direction pushes.
    Client,
    /// The server: writes to every tracked table are recorded, so nodes can pull them.
    Server,
}

/// Creates dbsync's tables and installs change capture on every tracked table of the
/// program (see [`Registry::global`]), as a client.
///
/// Run it after the application created or migrated its own tables, on every start: it is
/// idempotent, and it reinstalls capture so that columns added by a migration are covered.
/// It refuses a tracked table that is missing or that could reuse primary keys.
///
/// A SQLite database file is switched to write-ahead logging (`PRAGMA journal_mode = WAL`,
/// which the file keeps): a commit is then one fsync of the log instead of several of the
/// journal and the database, durable all the same, and readers run beside the writer. A sync
/// commits often (every server request records its nonce), so this is most of what SQLite
/// costs it. An application that needs the rollback journal sets it back after `create_all`.
///
/// ```standalone_crate
/// # mod city {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
/// #     #[sea_orm(table_name = "city")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i32, #[sea_orm(unique)] pub name: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use sea_orm::{ActiveModelTrait, Database, Set};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.get_schema_builder().register(city::Entity).apply(&db).await?;
/// dbsync::create_all(&db).await?;
/// dbsync::create_all(&db).await?; // safe on every start
///
/// city::ActiveModel { name: Set("Paris".into()), ..Default::default() }.insert(&db).await?;
/// assert_eq!(dbsync::unsynced_objects(&db).await?.len(), 1);
/// # Ok::<(), dbsync::Error>(())
/// # }).unwrap();
/// ```
pub async fn create_all<C>(db: &C) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    create_all_with(db, Registry::global(), Role::Client).await
}

/// [`create_all`] for an explicit registry and role.
pub async fn create_all_with<C>(db: &C, registry: &Registry, role: Role) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    registry.validate()?;
    let backend = db.get_database_backend();
    if backend == DbBackend::Sqlite
        && let Err(err) = db.execute_unprepared("PRAGMA journal_mode = WAL").await
    {
        // Another connection holding the file keeps its journal; only speed is lost.
        tracing::warn!(%err, "SQLite stays in its journal mode");
    }
    let txn = db.begin().await?;
    if backend == DbBackend::Postgres {
        // Several server processes may start at once; DDL on the same objects must queue.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7381402113)")
            .await?;
    }
    for sql in capture::log_tables(backend) {
        txn.execute_unprepared(&sql).await?;
    }
    for sql in crate::node_state::tables(backend) {
        txn.execute_unprepared(sql).await?;
    }
    let captured = registry.subset(|t| role == Role::Server || t.direction.pushes());
    let mariadb = backend == DbBackend::MySql
        && scalar::<String, _>(&txn, backend, "SELECT VERSION()", vec![])
            .await?
            .is_some_and(|v| v.contains("MariaDB"));
    for table in registry.tables() {
        check_keys(&txn, backend, table).await?;
        let statements = if captured.table(&table.name).is_some() {
            capture::install(backend, table, &captured, mariadb)
        } else {
            capture::uninstall(backend, table)
        };
        for sql in statements {
            txn.execute_unprepared(&sql).await?;
        }
    }
    txn.commit().await?;
    tracing::debug!(
        tables = registry.tables().len(),
        ?role,
        "dbsync capture installed"
    );
    Ok(())
}

/// Removes change capture from every tracked table of the program and drops dbsync's
/// tables, with the unsynced operations in them.
pub async fn drop_all<C>(db: &C) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    drop_all_with(db, Registry::global()).await
}

/// [`drop_all`] for an explicit registry.
pub async fn drop_all_with<C>(db: &C, registry: &Registry) -> Result<()>
where
    C: ConnectionTrait + TransactionTrait,
{
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    for table in registry.tables() {
        for sql in capture::uninstall(backend, table) {
            txn.execute_unprepared(&sql).await?;
        }
    }
    for sql in capture::drop_log_tables(backend) {
        txn.execute_unprepared(&sql).await?;
    }
    for sql in crate::node_state::DROP {
        txn.execute_unprepared(sql).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Refuses a table that is missing or whose primary keys could be handed out twice: a reused
/// key would make a new row look like an old one to every other node.
async fn check_keys<C: ConnectionTrait>(
    db: &C,
    backend: DbBackend,
    table: &TableInfo,
) -> Result<()> {
    let missing = || Error::MissingTable {
        table: table.name.clone(),
    };
    let reuse = |reason: String, fix: &str| Error::KeyReuse {
        table: table.name.clone(),
        reason,
        fix: fix.to_owned(),
    };
    let pk = &table.primary_key;
    match backend {
        DbBackend::Sqlite => {
            let sql: Option<String> = scalar(
                db,
                backend,
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                vec![table.name.clone().into()],
            )
            .await?;
            let sql = sql.ok_or_else(missing)?;
            if !sql.to_ascii_uppercase().contains("AUTOINCREMENT") {
                return Err(reuse(
                    format!(
                        "its primary key `{pk}` is not AUTOINCREMENT, so SQLite hands out the \
                         key of the newest deleted row again"
                    ),
                    "declare the key `INTEGER PRIMARY KEY AUTOINCREMENT` (SeaORM's schema \
                     builder does for an auto-increment #[sea_orm(primary_key)])",
                ));
            }
        }
        DbBackend::Postgres => {
            let exists: Option<String> = scalar(
                db,
                backend,
                "SELECT to_regclass($1)::text",
                vec![quote(&table.name).into()],
            )
            .await?;
            exists.ok_or_else(missing)?;
            let cycles: Option<bool> = scalar(
                db,
                backend,
                "SELECT s.seqcycle FROM pg_sequence s \
                 WHERE s.seqrelid = pg_get_serial_sequence($1, $2)::regclass",
                vec![quote(&table.name).into(), pk.clone().into()],
            )
            .await?;
            match cycles {
                None => {
                    return Err(reuse(
                        format!("its primary key `{pk}` has no sequence or identity"),
                        "declare it `GENERATED BY DEFAULT AS IDENTITY` (SeaORM's schema \
                         builder does for an auto-increment #[sea_orm(primary_key)])",
                    ));
                }
                Some(true) => {
                    return Err(reuse(
                        format!("the sequence of `{pk}` is CYCLE"),
                        "ALTER the sequence to NO CYCLE",
                    ));
                }
                Some(false) => {}
            }
        }
        _ => {
            let exists: Option<i64> = scalar(
                db,
                backend,
                "SELECT COUNT(*) FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                vec![table.name.clone().into()],
            )
            .await?;
            if exists.unwrap_or(0) == 0 {
                return Err(missing());
            }
            let extra: Option<String> = scalar(
                db,
                backend,
                "SELECT EXTRA FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                vec![table.name.clone().into(), pk.clone().into()],
            )
            .await?;
            if !extra
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("auto_increment")
            {
                return Err(reuse(
                    format!("its primary key `{pk}` is not AUTO_INCREMENT"),
                    "declare it AUTO_INCREMENT (SeaORM's schema builder does for an \
                     auto-increment #[sea_orm(primary_key)])",
                ));
            }
        }
    }
    Ok(())
}

/// The first column of the first row, or `None` when there is no row or it is `NULL`.
pub(crate) async fn scalar<T, C>(
    db: &C,
    backend: DbBackend,
    sql: &str,
    values: Vec<Value>,
) -> Result<Option<T>>
where
    T: sea_orm::TryGetable,
    C: ConnectionTrait,
{
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<Option<T>>(0)?),
        None => Ok(None),
    }
}
