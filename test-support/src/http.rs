//! A GET on loopback (plain HTTP/1.1), enough for dev-sidecar's inspection
//! surface and health endpoints.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// GET `path_and_query` on 127.0.0.1:`port` and parse the body as JSON.
pub async fn get_json(port: u16, path_and_query: &str) -> std::io::Result<serde_json::Value> {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path_and_query} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    serde_json::from_str(body).map_err(|err| std::io::Error::other(format!("{err}: {response}")))
}
