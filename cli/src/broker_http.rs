//! Asking a broker for an evidence report: `GET /v1/evidence` on its HTTP listener (the
//! one that serves `/metrics`), plain HTTP/1.1 through the hyper client the operator
//! already builds, the whole exchange bounded by one timeout.

use std::error::Error as StdError;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::ACCEPT;
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice_schema::evidence::Report;

use crate::time::Window;

/// A report reads the window's records on every broker: minutes of data take seconds,
/// and a stuck broker must not hang a shell script forever.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest error body quoted back to the user (an HTML error page says nothing more
/// after its first lines).
const MAX_QUOTED_ERROR: usize = 500;

/// `http://host:port` with no trailing slash. A bare `host:port` means plain HTTP, which
/// is all the brokers' listener speaks.
pub fn base_url(broker: &str) -> anyhow::Result<String> {
    let broker = broker.trim().trim_end_matches('/');
    if broker.is_empty() {
        bail!("--broker is empty: give the brokers' HTTP address, e.g. http://127.0.0.1:9644");
    }
    match broker.split_once("://") {
        None => Ok(format!("http://{broker}")),
        Some(("http", rest)) if !rest.is_empty() => Ok(broker.to_string()),
        Some((scheme, _)) => bail!(
            "--broker {broker}: only http:// addresses are supported (the brokers' HTTP listener is plain HTTP), not {scheme}://"
        ),
    }
}

/// The report's address: the topic escaped, the window in epoch milliseconds.
pub fn evidence_url(base: &str, topic: &str, window: Window) -> String {
    format!(
        "{base}/v1/evidence?topic={}&from={}&to={}",
        urlencoding::encode(topic),
        window.from_ms,
        window.to_ms
    )
}

/// GETs the report of `topic` over `window` from the broker at `base` (see [`base_url`]).
pub async fn fetch_report(
    base: &str,
    topic: &str,
    window: Window,
    timeout: Duration,
) -> anyhow::Result<Report> {
    let url = evidence_url(base, topic, window);
    let (status, body) = tokio::time::timeout(timeout, get(&url))
        .await
        .map_err(|_| {
            anyhow!(
                "the broker at {base} did not answer within {} s (GET {url})",
                timeout.as_secs()
            )
        })?
        .with_context(|| format!("no answer from the broker at {base} (GET {url})"))?;
    if !status.is_success() {
        bail!(
            "the broker at {base} answered {status} to GET {url}: {}",
            error_message(&body)
        );
    }
    serde_json::from_slice(&body).with_context(|| {
        format!(
            "the broker at {base} answered {status} but not with an evidence report (GET {url})"
        )
    })
}

async fn get(url: &str) -> anyhow::Result<(StatusCode, Bytes)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(url)
        .header(ACCEPT, "application/json")
        .body(Empty::new())
        .with_context(|| format!("{url} is not a valid URL"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| anyhow!(error_chain(&e)))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| anyhow!("reading the answer: {}", error_chain(&e)))?
        .to_bytes();
    Ok((status, body))
}

/// hyper's errors say the useful part (`Connection refused`) only in their sources.
fn error_chain(error: &dyn StdError) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

/// What an error answer says: the broker's `{"error": ...}`, the schema registry's
/// `{"message": ...}` (its API answers paths nothing else serves), or the text itself.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) {
        for key in ["error", "message"] {
            if let Some(serde_json::Value::String(text)) = fields.get(key) {
                return text.clone();
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".into();
    }
    match text.char_indices().nth(MAX_QUOTED_ERROR) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_http_addresses_with_or_without_the_scheme() {
        assert_eq!(base_url("http://b:9644/").unwrap(), "http://b:9644");
        assert_eq!(base_url("127.0.0.1:9644").unwrap(), "http://127.0.0.1:9644");
        let err = base_url("https://b:9644").unwrap_err().to_string();
        assert!(err.contains("only http:// addresses"), "{err}");
        assert!(base_url(" ").is_err());
    }

    #[test]
    fn escapes_the_topic_and_sends_the_window_in_milliseconds() {
        let window = Window::new(1_000, 2_000).unwrap();
        assert_eq!(
            evidence_url("http://b:9644", "dns events&x", window),
            "http://b:9644/v1/evidence?topic=dns%20events%26x&from=1000&to=2000"
        );
    }

    #[test]
    fn quotes_the_error_the_broker_gave() {
        assert_eq!(
            error_message(br#"{"error": "unknown topic dns"}"#),
            "unknown topic dns"
        );
        assert_eq!(
            error_message(br#"{"error_code": 40401, "message": "HTTP 404 Not Found"}"#),
            "HTTP 404 Not Found"
        );
        assert_eq!(error_message(b"  starting\n"), "starting");
        assert_eq!(error_message(b""), "(no message)");
        let long = "x".repeat(MAX_QUOTED_ERROR + 10);
        assert_eq!(
            error_message(long.as_bytes()),
            format!("{}...", "x".repeat(MAX_QUOTED_ERROR))
        );
    }
}
