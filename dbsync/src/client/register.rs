//! `register`: obtain and store the node's credentials.

use super::Client;
use super::transport::Kind;
use crate::error::Result;
use crate::messages::{PROTOCOL_VERSION, RegisterRequest, RegisterResponse};
use crate::node_state;

impl Client {
    /// Asks the server for a node id and secret and stores them locally. A node that
    /// registers again gets new credentials and keeps its data and version.
    #[tracing::instrument(name = "dbsync.client.register", skip_all)]
    pub async fn register(&self) -> Result<i64> {
        let request = RegisterRequest {
            protocol: PROTOCOL_VERSION,
            extra_data: self.inner.extra_data.clone(),
        };
        let (answer, _): (RegisterResponse, _) =
            self.post("register", &request, None, Kind::Other).await?;
        node_state::save_credentials(&self.inner.db, answer.node_id, &answer.secret).await?;
        tracing::info!(node_id = answer.node_id, "registered");
        Ok(answer.node_id)
    }
}
