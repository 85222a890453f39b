//! `todo.v1.AuditService`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

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
    pub verified: VerifiedHeads,
}

/// How often, at most, one user's whole chain is read and hashed again by
/// this replica. Between full verifications a call checks that the last
/// verified record is unchanged and verifies only the records after it, so
/// a user calling VerifyAuditChain in a loop costs the database the new
/// records, not the whole log each time.
pub const FULL_VERIFICATION_EVERY: Duration = Duration::from_secs(60);

/// Per user, the head of the chain as last verified in full or in part.
#[derive(Default, Clone)]
pub struct VerifiedHeads(Arc<Mutex<HashMap<String, VerifiedHead>>>);

#[derive(Clone)]
struct VerifiedHead {
    sequence: i64,
    hash: Vec<u8>,
    /// When the whole chain was last verified.
    fully_at: Instant,
}

impl VerifiedHeads {
    fn recent(&self, user: &str) -> Option<VerifiedHead> {
        let heads = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        heads
            .get(user)
            .filter(|head| head.fully_at.elapsed() < FULL_VERIFICATION_EVERY)
            .cloned()
    }

    fn remember(&self, user: &str, head: Option<VerifiedHead>) {
        let mut heads = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Forget heads too old to be used, so memory follows recent callers.
        if heads.len() >= 10_000 {
            heads.retain(|_, head| head.fully_at.elapsed() < FULL_VERIFICATION_EVERY);
        }
        match head {
            Some(head) => heads.insert(user.to_owned(), head),
            None => heads.remove(user),
        };
    }
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
        let status = |err: sqlx::Error| todo_core::db::status(&err);
        // Resume at the last verified head if that was recent and the head
        // still carries the hash it had: the head itself is verified again
        // (its hash from its contents), so it is the very record vouched
        // for, and so is everything its hash covers. Otherwise, or if the
        // head changed, the full pass runs and locates any break.
        let mut resumed = None;
        if let Some(head) = self.verified.recent(&user) {
            let at_head = store::list(&self.pool, &user, &Filter::default(), head.sequence - 1, 1)
                .await
                .map_err(status)?;
            if let Some(row) = at_head
                .into_iter()
                .next()
                .filter(|row| row.sequence == head.sequence && row.hash == head.hash)
            {
                resumed = Some((head, row.previous_hash));
            }
        }
        let (mut verifier, mut after, fully_at) = match resumed {
            Some((head, previous_hash)) => (
                self.chain.verifier_after(head.sequence - 1, previous_hash),
                head.sequence - 1,
                head.fully_at,
            ),
            None => (self.chain.verifier(), 0, Instant::now()),
        };
        loop {
            let rows = store::list(&self.pool, &user, &Filter::default(), after, VERIFY_BATCH)
                .await
                .map_err(status)?;
            for row in &rows {
                if let Err(broken) = verifier.check(&row.fields(), &row.previous_hash, &row.hash) {
                    self.verified.remember(&user, None);
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
        let (sequence, hash) = verifier.head();
        self.verified.remember(
            &user,
            Some(VerifiedHead {
                sequence,
                hash: hash.to_vec(),
                fully_at,
            }),
        );
        Ok(Response::new(VerifyAuditChainResponse {
            valid: true,
            records_checked: verifier.checked,
            first_invalid_sequence: 0,
            reason: String::new(),
        }))
    }
}
