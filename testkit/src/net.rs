//! Loopback ports and a minimal HTTP/1.0 client for tests: enough for `/readyz`,
//! `/metrics` and an emulator's REST calls, with every wait bounded.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Read/write timeout of every request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One free TCP port on 127.0.0.1 (bound to port 0, then released).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free TCP ports on 127.0.0.1. All are held until every one is chosen, so
/// they differ from each other.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local_addr").port())
        .collect()
}

/// A minimal HTTP/1.0 GET: returns (status, body).
pub fn http_get(addr: impl ToSocketAddrs, path: &str) -> io::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

/// A minimal HTTP/1.0 request without a body: returns (status, body).
pub fn http_request(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
) -> io::Result<(u16, String)> {
    http_send(addr, method, path, "")
}

/// A minimal HTTP/1.0 request with a JSON body (none when empty): returns (status, body).
pub fn http_send(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    json: &str,
) -> io::Result<(u16, String)> {
    let addr = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    // One write: a server that reads the request once and closes must not leave part of
    // it unread (its close would then reset the connection before the answer is read).
    let content_type = if json.is_empty() {
        String::new()
    } else {
        "Content-Type: application/json\r\n".to_string()
    };
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line in {head:?}"),
            )
        })?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_differ() {
        let ports = free_ports(3);
        assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    }

    #[test]
    fn reads_status_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Read the whole request head, so closing leaves nothing unread.
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "request ended early: {request:?}");
                request.extend_from_slice(&buf[..n]);
            }
            assert!(request.starts_with(b"PUT /bucket HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.1 404 Not Found\r\nX: y\r\n\r\nnope")
                .unwrap();
        });
        let (status, body) = http_request(addr, "PUT", "/bucket").unwrap();
        server.join().unwrap();
        assert_eq!((status, body.as_str()), (404, "nope"));
    }
}
