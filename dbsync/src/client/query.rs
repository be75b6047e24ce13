//! `query`: read server rows of one entity by column equality.

use super::Client;
use super::transport::Kind;
use crate::error::Result;
use crate::messages::{QueryRequest, QueryResponse};
use crate::row::{Row, encode, from_row};
use crate::tracked::Tracked;
use sea_orm::{IdenStatic, Value};

impl Client {
    /// The server's rows of `E` whose columns equal every given value, as models. The
    /// server caps the number of rows (1,000 by default).
    ///
    /// ```no_run
    /// # mod city {
    /// #     use sea_orm::entity::prelude::*;
    /// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, dbsync::Tracked)]
    /// #     #[sea_orm(table_name = "city")]
    /// #     pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub name: String }
    /// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    /// #     pub enum Relation {}
    /// #     impl ActiveModelBehavior for ActiveModel {}
    /// # }
    /// # async fn run(client: dbsync::Client) -> dbsync::Result<()> {
    /// let paris: Vec<city::Model> = client.query::<city::Entity>([(city::Column::Name, "Paris".into())]).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[tracing::instrument(name = "dbsync.client.query", skip_all)]
    pub async fn query<E: Tracked>(
        &self,
        filters: impl IntoIterator<Item = (E::Column, Value)>,
    ) -> Result<Vec<E::Model>> {
        let node = self.node().await?;
        let filters: Row = filters
            .into_iter()
            .map(|(column, value)| (column.as_str().to_owned(), encode(&value)))
            .collect();
        let request = QueryRequest {
            meta: self.meta(node.node_id),
            table: E::default().table_name().to_owned(),
            filters,
        };
        let (answer, _): (QueryResponse, _) = self
            .post(
                "query",
                &request,
                Some((node.node_id, &node.secret)),
                Kind::Other,
            )
            .await?;
        answer.rows.iter().map(from_row::<E>).collect()
    }
}
