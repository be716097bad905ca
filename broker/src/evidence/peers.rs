//! Asking the other brokers for their part of a report (`GET /v1/evidence/local` on
//! their HTTP port, as registered in the cluster metadata). Plain HTTP/1.1 on a fresh
//! connection, bounded in time: a peer that does not answer leaves its partitions
//! uncounted, which the report names as a finding.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::log_scan::LocalPart;
use super::Window;

/// Longest a peer may take for its part (a scan of its partitions of the window).
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read from a peer.
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

/// The part of the broker at `host:port`.
pub async fn ask(host: &str, port: i32, window: &Window) -> Result<LocalPart, String> {
    let path = format!(
        "/v1/evidence/local?topic={}&from={}&to={}",
        encode(&window.topic),
        window.from_ms,
        window.to_ms
    );
    let answer = tokio::time::timeout(PEER_TIMEOUT, get(host, port, &path))
        .await
        .map_err(|_| format!("{host}:{port} did not answer within {PEER_TIMEOUT:?}"))??;
    serde_json::from_slice(&answer).map_err(|e| format!("{host}:{port} answered {e}"))
}

async fn get(host: &str, port: i32, path: &str) -> Result<Vec<u8>, String> {
    let mut conn = TcpStream::connect((host, port as u16))
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let mut raw = Vec::new();
    conn.take(MAX_ANSWER)
        .read_to_end(&mut raw)
        .await
        .map_err(|e| format!("{host}:{port}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{host}:{port}: not an HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).unwrap_or("");
    let body = raw[split + 4..].to_vec();
    if status != "200" {
        return Err(format!(
            "{host}:{port} answered {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    if head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    }) {
        return dechunk(&body).ok_or_else(|| format!("{host}:{port}: a broken chunked answer"));
    }
    Ok(body)
}

/// The body of a chunked answer.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&raw[..line_end])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// A topic name in a query string (Kafka topic names are `[a-zA-Z0-9._-]`).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_answers_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").as_deref(),
            Some(&b"Wikipedia"[..])
        );
        assert_eq!(dechunk(b"9\r\nshort\r\n"), None);
    }
}
