//! The operator's one HTTP client, for the brokers' HTTP listener (`/metrics`, the fleet
//! endpoint, the schema registry): plain HTTP/1.1, every call bounded by a timeout.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A pooled client; cheap to clone.
pub type Http = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> Http {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

/// An answer of any status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

/// A JSON body and its content type.
pub struct JsonBody<'a> {
    pub content_type: &'a str,
    pub json: &'a serde_json::Value,
}

/// One call; the answer whatever its status. `Err` only when no answer came (connection,
/// timeout, a body that is not UTF-8).
pub async fn call(
    http: &Http,
    method: Method,
    url: &str,
    body: Option<JsonBody<'_>>,
    timeout: Duration,
) -> Result<Answer, String> {
    let mut req = hyper::Request::builder().method(method).uri(url);
    let payload = match body {
        Some(b) => {
            req = req.header(hyper::header::CONTENT_TYPE, b.content_type);
            Bytes::from(b.json.to_string())
        }
        None => Bytes::new(),
    };
    let req = req.body(Full::new(payload)).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(timeout, http.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = tokio::time::timeout(timeout, response.into_body().collect())
        .await
        .map_err(|_| "timed out reading the body".to_string())?
        .map_err(|e| e.to_string())?
        .to_bytes();
    let body =
        String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())?;
    Ok(Answer { status, body })
}

/// A call without a body that must succeed: the body of a 2xx answer.
pub async fn request(
    http: &Http,
    method: Method,
    url: &str,
    timeout: Duration,
) -> Result<String, String> {
    let answer = call(http, method, url, None, timeout).await?;
    if !answer.status.is_success() {
        return Err(format!("HTTP {}: {}", answer.status, answer.body.trim()));
    }
    Ok(answer.body)
}
