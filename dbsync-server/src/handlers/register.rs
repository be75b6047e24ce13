//! `register`: a new node id and secret.

use crate::config::Procedure;
use crate::error::ServerError;
use crate::server::{SyncServer, check_protocol, parse, scalar, statement};
use dbsync::messages::{RegisterRequest, RegisterResponse, now_millis};
use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

impl SyncServer {
    /// Registers a node: the authorization hook sees the request's `extra_data`, then the
    /// node gets an id and a 256-bit secret from the operating system's CSPRNG.
    #[tracing::instrument(name = "dbsync.register", skip_all)]
    pub async fn handle_register(&self, body: &[u8]) -> Result<RegisterResponse, ServerError> {
        let request: RegisterRequest = parse(body)?;
        check_protocol(request.protocol)?;
        self.authorize(Procedure::Register, None, &request.extra_data)?;
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let db = self.db();
        let backend = db.get_database_backend();
        let node_id: i64 = if backend == DbBackend::Postgres {
            scalar(
                db,
                "INSERT INTO dbsync_nodes (secret, registered_at, last_seen) VALUES ($1, $2, $3) RETURNING node_id",
                vec![secret.clone().into(), now_millis().into(), now_millis().into()],
            )
            .await?
            .ok_or_else(|| ServerError::Internal("no node id returned".into()))?
        } else {
            let txn = db.begin().await?;
            let result = txn
                .execute_raw(statement(
                    backend,
                    "INSERT INTO dbsync_nodes (secret, registered_at, last_seen) VALUES ($1, $2, $3)",
                    vec![secret.clone().into(), now_millis().into(), now_millis().into()],
                ))
                .await?;
            txn.commit().await?;
            i64::try_from(result.last_insert_id())
                .map_err(|e| ServerError::Internal(e.to_string()))?
        };
        tracing::info!(node_id, "node registered");
        Ok(RegisterResponse { node_id, secret })
    }
}
