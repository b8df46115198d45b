//! A small blocking HTTP/1.1 client with keep-alive, for the kv tests and
//! benchmark (`#[path]`-included: not every test needs it).
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

/// One keep-alive connection.
pub struct HttpClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl HttpClient {
    /// Connects to `address` (`host:port`); reads and writes time out after
    /// `limit`.
    pub fn connect(address: &str, limit: Duration) -> io::Result<HttpClient> {
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        stream.set_nodelay(true)?;
        Ok(HttpClient {
            stream,
            buffer: Vec::new(),
        })
    }

    /// A handle that can shut the connection from another thread.
    pub fn handle(&self) -> io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Sends `method PATH` with `body` (a Content-Length when `Some`);
    /// returns the status and body of the answer.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> io::Result<(u16, Vec<u8>)> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: kv\r\n");
        if let Some(body) = body {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.stream.write_all(&bytes)?;
        self.response(method == "HEAD")
    }

    /// Reads one response.
    fn response(&mut self, head_only: bool) -> io::Result<(u16, Vec<u8>)> {
        let mut chunk = [0u8; 16384];
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let status: u16 = head
                    .get(9..12)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| invalid(format!("bad status line: {head}")))?;
                let length = if head_only || status == 204 || status < 200 {
                    0
                } else {
                    head.lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .ok_or_else(|| invalid(format!("no Content-Length: {head}")))?
                };
                let total = end + 4 + length;
                if self.buffer.len() >= total {
                    let body = self.buffer[end + 4..total].to_vec();
                    self.buffer.drain(..total);
                    if status == 100 {
                        continue;
                    }
                    return Ok((status, body));
                }
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn put(&mut self, key: &str, value: &[u8]) -> io::Result<u16> {
        Ok(self.request("PUT", &format!("/{key}"), Some(value))?.0)
    }

    pub fn get(&mut self, key: &str) -> io::Result<(u16, Vec<u8>)> {
        self.request("GET", &format!("/{key}"), None)
    }

    pub fn delete(&mut self, key: &str) -> io::Result<u16> {
        Ok(self.request("DELETE", &format!("/{key}"), None)?.0)
    }

    /// The `name value` lines of `GET /`.
    pub fn counts(&mut self) -> io::Result<Vec<(String, u64)>> {
        let (status, body) = self.request("GET", "/", None)?;
        if status != 200 {
            return Err(invalid(format!("GET / answered {status}")));
        }
        Ok(String::from_utf8_lossy(&body)
            .lines()
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect())
    }

    /// One of the counts of `GET /`.
    pub fn count(&mut self, name: &str) -> io::Result<u64> {
        self.counts()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("no count {name}")))
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
