//! `todo.v1.TaskService`. Each method reads the caller, converts the
//! request, runs one operation and converts the result; the rules live in
//! `operations` and `domain`.

use std::pin::Pin;

use todo_core::{
    auth::UserId,
    proto::v1::{
        CompleteTaskRequest, CompleteTaskResponse, CreateTaskRequest, CreateTaskResponse, DeleteTaskRequest,
        DeleteTaskResponse, GetTaskRequest, GetTaskResponse, ListTasksRequest, ListTasksResponse, Priority, TaskOrder,
        UpdateTaskRequest, UpdateTaskResponse, WatchTasksRequest, WatchTasksResponse, task_service_server::TaskService,
    },
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    domain::validation::{self, invalid},
    operations::{OperationError, Tasks},
    store::listing::{ListFilter, Order},
    watch::WatchHub,
};

pub struct TaskApi {
    tasks: Tasks,
    watch: WatchHub,
}

impl TaskApi {
    pub fn new(tasks: Tasks, watch: WatchHub) -> Self {
        Self { tasks, watch }
    }
}

/// The trace context stored with the outbox row, so the event continues this
/// RPC's trace: the RPC's own span when spans are exported, else the
/// caller's `traceparent` as it came.
fn traceparent<T>(request: &Request<T>) -> Option<String> {
    let incoming = request
        .metadata()
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .filter(|value| value.len() <= 128);
    todo_core::telemetry::traceparent_or(incoming)
}

fn caller<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(UserId::of(request)?.as_str().to_owned())
}

fn list_filter(request: &ListTasksRequest) -> Result<(ListFilter, Order), OperationError> {
    let priority = match Priority::try_from(request.priority) {
        Ok(Priority::Unspecified) => None,
        Ok(known) => Some(known as i16),
        Err(_) => return Err(invalid("priority", format!("unknown priority {}", request.priority)).into()),
    };
    let order = match TaskOrder::try_from(request.order_by) {
        Ok(TaskOrder::Unspecified | TaskOrder::CreatedDesc) => Order::CreatedDesc,
        Ok(TaskOrder::DueAsc) => Order::DueAsc,
        Err(_) => return Err(invalid("order_by", format!("unknown order {}", request.order_by)).into()),
    };
    let tag = match request.tag.trim() {
        "" => None,
        tag => Some(validation::tags("tag", &[tag.to_owned()])?.remove(0)),
    };
    let filter = ListFilter {
        completed: request.completed,
        priority,
        tag,
        due_before: validation::optional_timestamp("due_before", request.due_before.as_ref())?,
        due_after: validation::optional_timestamp("due_after", request.due_after.as_ref())?,
        query: validation::query(&request.query)?,
    };
    Ok((filter, order))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchTasksResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl TaskService for TaskApi {
    async fn create_task(&self, request: Request<CreateTaskRequest>) -> Result<Response<CreateTaskResponse>, Status> {
        let user = caller(&request)?;
        let trace = traceparent(&request);
        let task = self.tasks.create(&user, request.get_ref(), trace.as_deref()).await?;
        Ok(Response::new(CreateTaskResponse {
            task: Some(task.to_proto()),
        }))
    }

    async fn get_task(&self, request: Request<GetTaskRequest>) -> Result<Response<GetTaskResponse>, Status> {
        let user = caller(&request)?;
        let task = self.tasks.get(&user, &request.get_ref().id).await?;
        Ok(Response::new(GetTaskResponse {
            task: Some(task.to_proto()),
        }))
    }

    async fn list_tasks(&self, request: Request<ListTasksRequest>) -> Result<Response<ListTasksResponse>, Status> {
        let user = caller(&request)?;
        let message = request.get_ref();
        let page_size = validation::page_size(message.page_size).map_err(OperationError::from)?;
        let (filter, order) = list_filter(message)?;
        let page = self
            .tasks
            .list(&user, filter, order, &message.page_token, page_size)
            .await?;
        Ok(Response::new(ListTasksResponse {
            tasks: page.tasks.iter().map(|task| task.to_proto()).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn update_task(&self, request: Request<UpdateTaskRequest>) -> Result<Response<UpdateTaskResponse>, Status> {
        let user = caller(&request)?;
        let trace = traceparent(&request);
        let message = request.get_ref();
        let patch = message
            .task
            .as_ref()
            .ok_or_else(|| OperationError::from(invalid("task", "must be set")))?;
        let mask = message
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.as_slice())
            .unwrap_or_default();
        let task = self
            .tasks
            .update(&user, patch, mask, message.expected_version, trace.as_deref())
            .await?;
        Ok(Response::new(UpdateTaskResponse {
            task: Some(task.to_proto()),
        }))
    }

    async fn complete_task(
        &self,
        request: Request<CompleteTaskRequest>,
    ) -> Result<Response<CompleteTaskResponse>, Status> {
        let user = caller(&request)?;
        let trace = traceparent(&request);
        let message = request.get_ref();
        let task = self
            .tasks
            .complete(&user, &message.id, message.expected_version, trace.as_deref())
            .await?;
        Ok(Response::new(CompleteTaskResponse {
            task: Some(task.to_proto()),
        }))
    }

    async fn delete_task(&self, request: Request<DeleteTaskRequest>) -> Result<Response<DeleteTaskResponse>, Status> {
        let user = caller(&request)?;
        let trace = traceparent(&request);
        let message = request.get_ref();
        self.tasks
            .delete(&user, &message.id, message.expected_version, trace.as_deref())
            .await?;
        Ok(Response::new(DeleteTaskResponse {}))
    }

    type WatchTasksStream = WatchStream;

    async fn watch_tasks(&self, request: Request<WatchTasksRequest>) -> Result<Response<WatchStream>, Status> {
        let user = caller(&request)?;
        Ok(Response::new(Box::pin(self.watch.watch(user)?)))
    }
}
