//! `todo.v1.NotificationService`.

use todo_core::db::Database;
use todo_core::{
    auth::UserId,
    pagination,
    proto::v1::{
        ListNotificationsRequest, ListNotificationsResponse, notification_service_server::NotificationService,
    },
};
use tonic::{Request, Response, Status};

use crate::store::{self, Cursor};

pub const DEFAULT_PAGE_SIZE: i32 = 50;
pub const MAX_PAGE_SIZE: i32 = 500;

pub struct NotificationApi {
    pub pool: Database,
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    async fn list_notifications(
        &self,
        request: Request<ListNotificationsRequest>,
    ) -> Result<Response<ListNotificationsResponse>, Status> {
        let user = UserId::of(&request)?.as_str().to_owned();
        let message = request.into_inner();
        let page_size = pagination::page_size(message.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
            .map_err(Status::invalid_argument)?;
        let task_id = pagination::task_id_filter(&message.task_id).map_err(Status::invalid_argument)?;
        let cursor = match message.page_token.as_str() {
            "" => None,
            token => {
                let cursor: Cursor =
                    pagination::decode(token).map_err(|err| Status::invalid_argument(err.to_string()))?;
                // Only times a Timestamp carries are stored; PostgreSQL
                // cannot take some of the others.
                if !todo_core::timestamps::representable(cursor.created_at) {
                    return Err(Status::invalid_argument("page_token: not a token this API issued"));
                }
                if cursor.task_id != task_id {
                    return Err(Status::invalid_argument(
                        "page_token: was issued for a different task_id",
                    ));
                }
                Some(cursor)
            }
        };
        let mut conn = self.pool.acquire().await.map_err(|err| todo_core::db::status(&err))?;
        let mut rows = store::list(&mut conn, &user, task_id.as_deref(), cursor.as_ref(), page_size + 1)
            .await
            .map_err(|err| todo_core::db::status(&err))?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            let last = rows.last().expect("page_size is at least 1");
            pagination::encode(&Cursor {
                created_at: last.created_at,
                id: last.id,
                task_id: task_id.clone(),
            })
        } else {
            String::new()
        };
        Ok(Response::new(ListNotificationsResponse {
            notifications: rows.iter().map(|row| row.to_proto()).collect(),
            next_page_token,
        }))
    }
}
