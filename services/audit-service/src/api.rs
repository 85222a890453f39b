//! `todo.v1.AuditService`.

use prost::Message;
use serde::{Deserialize, Serialize};
use todo_core::db::Database;
use todo_core::{
    auth::UserId,
    pagination,
    proto::v1::{
        ListAuditRecordsRequest, ListAuditRecordsResponse, VerifyAuditChainRequest, VerifyAuditChainResponse,
        audit_service_server::AuditService,
    },
    timestamps,
};
use tonic::{Request, Response, Status};

use crate::{
    chain::Chain,
    store::{self, Filter},
};

pub const DEFAULT_PAGE_SIZE: i32 = 100;
pub const MAX_PAGE_SIZE: i32 = 500;
/// Records read per query while verifying.
const VERIFY_BATCH: i64 = 1000;

pub struct AuditApi {
    pub pool: Database,
    pub chain: Chain,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    after: i64,
    filter: Filter,
}

fn filter(request: &ListAuditRecordsRequest) -> Result<Filter, Status> {
    let task_id = pagination::task_id_filter(&request.task_id).map_err(Status::invalid_argument)?;
    let time = |field: &'static str, value: Option<&prost_types::Timestamp>| {
        value
            .map(timestamps::from_proto)
            .transpose()
            .map_err(|err| Status::invalid_argument(format!("{field}: {err}")))
    };
    Ok(Filter {
        task_id,
        occurred_after: time("occurred_after", request.occurred_after.as_ref())?,
        occurred_before: time("occurred_before", request.occurred_before.as_ref())?,
    })
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_records(
        &self,
        request: Request<ListAuditRecordsRequest>,
    ) -> Result<Response<ListAuditRecordsResponse>, Status> {
        let user = UserId::of(&request)?.as_str().to_owned();
        let message = request.into_inner();
        let page_size = pagination::page_size(message.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(Status::invalid_argument)?;
        let filter = filter(&message)?;
        let after = match message.page_token.as_str() {
            "" => 0,
            token => {
                let cursor: Cursor =
                    pagination::decode(token).map_err(|err| Status::invalid_argument(err.to_string()))?;
                if cursor.filter != filter {
                    return Err(Status::invalid_argument("page_token: was issued for different filters"));
                }
                cursor.after
            }
        };
        let mut rows = store::list(&self.pool, &user, &filter, after, page_size + 1)
            .await
            .map_err(|err| todo_core::db::status(&err))?;
        let next_page_token = if pagination::fit_page(&mut rows, page_size as usize, |row| row.to_proto().encoded_len())
        {
            pagination::encode(&Cursor {
                after: rows.last().expect("a page is never empty").sequence,
                filter,
            })
        } else {
            String::new()
        };
        Ok(Response::new(ListAuditRecordsResponse {
            records: rows.iter().map(|row| row.to_proto()).collect(),
            next_page_token,
        }))
    }

    async fn verify_audit_chain(
        &self,
        request: Request<VerifyAuditChainRequest>,
    ) -> Result<Response<VerifyAuditChainResponse>, Status> {
        let user = UserId::of(&request)?.as_str().to_owned();
        let mut verifier = self.chain.verifier();
        let mut after = 0;
        loop {
            let rows = store::list(&self.pool, &user, &Filter::default(), after, VERIFY_BATCH)
                .await
                .map_err(|err| todo_core::db::status(&err))?;
            for row in &rows {
                if let Err(broken) = verifier.check(&row.fields(), &row.previous_hash, &row.hash) {
                    return Ok(Response::new(VerifyAuditChainResponse {
                        valid: false,
                        records_checked: verifier.checked,
                        first_invalid_sequence: broken.sequence,
                        reason: broken.reason,
                    }));
                }
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == VERIFY_BATCH => after = last.sequence,
                _ => break,
            }
        }
        Ok(Response::new(VerifyAuditChainResponse {
            valid: true,
            records_checked: verifier.checked,
            first_invalid_sequence: 0,
            reason: String::new(),
        }))
    }
}
