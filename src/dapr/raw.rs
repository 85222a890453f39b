//! Serving a gRPC service method by method, without implementing its
//! generated trait. The Dapr runtime service has about ninety methods; the
//! local sidecar and the test fake serve a handful and answer the rest with
//! UNIMPLEMENTED, so they route on the request path and decode only what
//! they serve.

use std::future::Future;

use tonic::{Request, Response, Status, body::Body};
use tonic_prost::ProstCodec;

/// The method name of a gRPC request path (`/package.Service/Method`).
pub fn method_name<B>(request: &http::Request<B>) -> String {
    request.uri().path().rsplit('/').next().unwrap_or_default().to_owned()
}

/// Decodes `request` as `Req`, runs `handler`, encodes its answer (or its
/// status) as a gRPC response.
pub async fn unary<Req, Resp, F, Fut>(request: http::Request<Body>, handler: F) -> http::Response<Body>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Request<Req>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response<Resp>, Status>> + Send + 'static,
{
    // `Grpc::unary` wants a reusable service; this one is called once.
    let mut handler = Some(handler);
    let service = tower::service_fn(move |request: Request<Req>| {
        let handler = handler.take();
        async move {
            match handler {
                Some(handler) => handler(request).await,
                None => Err(Status::internal("handler called twice")),
            }
        }
    });
    tonic::server::Grpc::new(ProstCodec::<Resp, Req>::default())
        .unary(service, request)
        .await
}

/// The answer to a method this server does not offer.
pub fn unimplemented(service: &str, method: &str, what: &str) -> http::Response<Body> {
    Status::unimplemented(format!("{service} does not implement {method}; {what}")).into_http()
}
