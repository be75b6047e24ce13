//! Transactions whose writes are not recorded: how dbsync applies server operations.

use crate::error::Result;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait};
use std::ops::Deref;
use std::sync::Mutex;

/// Rows written from which [`UntrackedTransaction::pause_triggers_for`] pauses the triggers.
const BULK_ROWS: usize = 1_000;

/// A transaction whose writes to tracked tables are not recorded as local operations.
///
/// dbsync applies the server's operations in one, so that they are not pushed back. Other
/// transactions keep being recorded and are never blocked by it: the suppression is
/// confined to this transaction on every database. Use it as a `&DatabaseTransaction`
/// through `Deref`, then [`commit`](Self::commit); dropping it rolls back.
///
/// Writes made here never reach the server. Applications rarely want that; it exists for
/// dbsync's own procedures and for local-only fix-ups.
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
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use sea_orm::{ActiveModelTrait, Database, Set};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// db.get_schema_builder().register(city::Entity).apply(&db).await?;
/// dbsync::create_all(&db).await?;
///
/// let txn = dbsync::begin_untracked(&db).await?;
/// city::ActiveModel { name: Set("Lyon".into()), ..Default::default() }.insert(&*txn).await?;
/// txn.commit().await?;
/// assert!(dbsync::unsynced_objects(&db).await?.is_empty());
/// # Ok::<(), dbsync::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct UntrackedTransaction {
    txn: DatabaseTransaction,
    /// The SQLite tracking triggers dropped until commit ([`Self::pause_triggers`]), as the
    /// statements that create them again.
    paused: Mutex<Vec<String>>,
}

/// Begins an [`UntrackedTransaction`].
pub async fn begin_untracked<C>(db: &C) -> Result<UntrackedTransaction>
where
    C: TransactionTrait<Transaction = DatabaseTransaction>,
{
    let txn = db.begin().await?;
    let sql = match txn.get_database_backend() {
        DbBackend::Sqlite => "UPDATE dbsync_state SET suppress = 1 WHERE id = 1",
        DbBackend::Postgres => "SELECT set_config('dbsync.suppress', 'on', true)",
        _ => {
            txn.execute_unprepared("SET @dbsync_suppress = UUID()")
                .await?;
            "INSERT INTO dbsync_suppress (token) VALUES (@dbsync_suppress)"
        }
    };
    txn.execute_unprepared(sql).await?;
    Ok(UntrackedTransaction {
        txn,
        paused: Mutex::new(Vec::new()),
    })
}

impl UntrackedTransaction {
    /// Drops SQLite's tracking triggers until this transaction commits, for a bulk write.
    ///
    /// In this transaction the triggers fire for every row and log nothing, and that check
    /// costs about as much as a third of writing the row (3 to 6 ms per 10,000 rows). SQLite
    /// changes its schema transactionally and lets one writer in at a time: no other write
    /// can happen while they are gone, [`commit`](Self::commit) creates them again from
    /// their own text, and a rollback keeps them as they were. Does nothing elsewhere, nor
    /// for fewer than [`BULK_ROWS`] rows: a schema change makes every connection prepare its
    /// statements again.
    #[doc(hidden)]
    pub async fn pause_triggers_for(&self, rows: usize) -> Result<()> {
        if rows < BULK_ROWS
            || self.txn.get_database_backend() != DbBackend::Sqlite
            || !self.paused().is_empty()
        {
            return Ok(());
        }
        let triggers: Vec<(String, String)> = crate::select_json::select_json(
            &self.txn,
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' \
             AND name LIKE 'dbsync\\_%' ESCAPE '\\' ORDER BY name",
            &["name", "sql"],
            vec![],
        )
        .await?;
        for (name, _) in &triggers {
            self.txn
                .execute_unprepared(&format!("DROP TRIGGER {}", crate::capture::quote(name)))
                .await?;
        }
        *self.paused() = triggers.into_iter().map(|(_, sql)| sql).collect();
        Ok(())
    }

    fn paused(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears the suppression and commits.
    pub async fn commit(self) -> Result<()> {
        let paused = std::mem::take(&mut *self.paused());
        for sql in paused {
            self.txn.execute_unprepared(&sql).await?;
        }
        match self.txn.get_database_backend() {
            DbBackend::Sqlite => {
                self.txn
                    .execute_unprepared("UPDATE dbsync_state SET suppress = 0 WHERE id = 1")
                    .await?;
            }
            // Transaction-local settings survive the release of a savepoint: when this
            // transaction is nested in another, the suppression must end here.
            DbBackend::Postgres => {
                self.txn
                    .execute_unprepared("SELECT set_config('dbsync.suppress', 'off', true)")
                    .await?;
            }
            _ => {
                self.txn
                    .execute_unprepared(
                        "DELETE FROM dbsync_suppress WHERE token = @dbsync_suppress",
                    )
                    .await?;
                self.txn
                    .execute_unprepared("SET @dbsync_suppress = NULL")
                    .await?;
            }
        }
        self.txn.commit().await?;
        Ok(())
    }

    /// Rolls back everything, the suppression included.
    pub async fn rollback(self) -> Result<()> {
        self.txn.rollback().await?;
        Ok(())
    }
}

impl Deref for UntrackedTransaction {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}
