//! HTTP/1.1 requests and responses, as far as the store needs them. Pure
//! functions over bytes: the connection loop is in [`crate::service`].
//!
//! A request head is parsed in two steps. [`parse_head`] checks the
//! framing (request line, headers, `Content-Length`): an error there
//! leaves the end of the request unknown, so the connection is answered
//! and closed. [`route`] then decides what the request asks of the store;
//! an error there is answered after the body is skipped, and the
//! connection stays open.

use alloc::format;
use alloc::vec::Vec;

use crate::format::{MAX_KEY, MAX_VALUE};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8192;

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    pub const CONTINUE: Status = Status(100);
    pub const OK: Status = Status(200);
    pub const CREATED: Status = Status(201);
    pub const NO_CONTENT: Status = Status(204);
    pub const BAD_REQUEST: Status = Status(400);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const REQUEST_TIMEOUT: Status = Status(408);
    pub const LENGTH_REQUIRED: Status = Status(411);
    pub const PAYLOAD_TOO_LARGE: Status = Status(413);
    pub const URI_TOO_LONG: Status = Status(414);
    pub const EXPECTATION_FAILED: Status = Status(417);
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    pub const INTERNAL_ERROR: Status = Status(500);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);
    pub const INSUFFICIENT_STORAGE: Status = Status(507);

    /// The reason phrase.
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Continue",
            200 => "OK",
            201 => "Created",
            204 => "No Content",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            414 => "URI Too Long",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            507 => "Insufficient Storage",
            _ => "Unknown",
        }
    }

    /// Whether a response with this status has no body (RFC 9110 §6.4.1).
    pub fn bodiless(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }
}

/// A request refused: the status and a line of explanation (the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: Status,
    pub message: &'static str,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

fn reject(status: Status, message: &'static str) -> Rejection {
    Rejection {
        status,
        message,
        allow: None,
    }
}

fn not_allowed(allow: &'static str) -> Rejection {
    Rejection {
        status: Status::METHOD_NOT_ALLOWED,
        message: "method not allowed\n",
        allow: Some(allow),
    }
}

/// A request head whose framing is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    pub target: &'a str,
    /// HTTP/1.1 (otherwise 1.0).
    pub http11: bool,
    /// The body's length (`None`: no `Content-Length`, no body).
    pub content_length: Option<u64>,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// The length of the head at the start of `buffer` (through the empty
/// line), once it is all there.
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks the framing of the head `head` (through its empty line).
pub fn parse_head(head: &[u8]) -> Result<RequestHead<'_>, Rejection> {
    let bad = |message| reject(Status::BAD_REQUEST, message);
    let text = core::str::from_utf8(head).map_err(|_| bad("request head is not UTF-8\n"))?;
    let text = text
        .strip_suffix("\r\n\r\n")
        .ok_or(bad("request head does not end with an empty line\n"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line\n"));
    };
    if !is_token(method) || target.is_empty() {
        return Err(bad("malformed request line\n"));
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.len() == 8 && v.starts_with("HTTP/") => {
            return Err(reject(
                Status::VERSION_NOT_SUPPORTED,
                "only HTTP/1.0 and HTTP/1.1\n",
            ))
        }
        _ => return Err(bad("malformed request line\n")),
    };
    let mut request = RequestHead {
        method,
        target,
        http11,
        content_length: None,
        keep_alive: http11,
        expect_continue: false,
    };
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(bad("malformed header line\n"))?;
        if !is_token(name) {
            return Err(bad("malformed header line\n"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let length = (!value.is_empty()
                && value.len() <= 19
                && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| value.parse::<u64>().ok())
            .flatten()
            .ok_or(bad("bad Content-Length\n"))?;
            if request.content_length.is_some_and(|l| l != length) {
                return Err(bad("conflicting Content-Length headers\n"));
            }
            request.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(reject(
                Status::LENGTH_REQUIRED,
                "send the body with a Content-Length, not a transfer coding\n",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(|o| o.trim_matches([' ', '\t'])) {
                if option.eq_ignore_ascii_case("close") {
                    request.keep_alive = false;
                } else if option.eq_ignore_ascii_case("keep-alive") {
                    request.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.eq_ignore_ascii_case("100-continue") {
                request.expect_continue = http11;
            } else {
                return Err(reject(Status::EXPECTATION_FAILED, "unknown expectation\n"));
            }
        }
    }
    Ok(request)
}

/// What the request target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/`: the counts.
    Root,
    /// `/KEY`: a key, percent-decoded.
    Key(Vec<u8>),
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes; `None` for a `%` without two hex digits.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let high = hex(*bytes.get(i + 1)?)?;
            let low = hex(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Parses an origin-form target: `/` or `/SEGMENT` (a query is ignored).
pub fn parse_target(target: &str) -> Result<Target, Rejection> {
    let bad = |message| reject(Status::BAD_REQUEST, message);
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("bad character in the request target\n"));
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let segment = path
        .strip_prefix('/')
        .ok_or(bad("the request target is not a path\n"))?;
    if segment.is_empty() {
        return Ok(Target::Root);
    }
    if segment.contains('/') {
        return Err(bad("a key is a single path segment\n"));
    }
    let key = percent_decode(segment).ok_or(bad("bad percent-encoding in the key\n"))?;
    if key.len() > MAX_KEY {
        return Err(reject(
            Status::URI_TOO_LONG,
            "a key has at most 255 bytes after percent-decoding\n",
        ));
    }
    Ok(Target::Key(key))
}

/// What a request asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /` (or `HEAD /`).
    Counts { head: bool },
    /// `GET /KEY` (or `HEAD /KEY`).
    Get { key: Vec<u8>, head: bool },
    /// `PUT /KEY`, the body is the value.
    Put { key: Vec<u8> },
    /// `DELETE /KEY`.
    Delete { key: Vec<u8> },
}

/// The `Allow` header of 405 answers.
pub const ALLOW: &str = "GET, HEAD, PUT, DELETE";
/// The `Allow` header of 405 answers about `/`.
pub const ALLOW_ROOT: &str = "GET, HEAD";

/// Decides what a request with a valid framing asks.
pub fn route(head: &RequestHead<'_>) -> Result<Route, Rejection> {
    let method = head.method;
    let target = parse_target(head.target);
    if !matches!(method, "GET" | "HEAD" | "PUT" | "DELETE") {
        let root = target == Ok(Target::Root);
        return Err(not_allowed(if root { ALLOW_ROOT } else { ALLOW }));
    }
    let target = target?;
    Ok(match (method, target) {
        ("GET", Target::Root) => Route::Counts { head: false },
        ("HEAD", Target::Root) => Route::Counts { head: true },
        (_, Target::Root) => return Err(not_allowed(ALLOW_ROOT)),
        ("GET", Target::Key(key)) => Route::Get { key, head: false },
        ("HEAD", Target::Key(key)) => Route::Get { key, head: true },
        ("PUT", Target::Key(key)) => match head.content_length {
            None => {
                return Err(reject(
                    Status::LENGTH_REQUIRED,
                    "a PUT needs a Content-Length\n",
                ))
            }
            Some(length) if length > MAX_VALUE as u64 => {
                return Err(reject(
                    Status::PAYLOAD_TOO_LARGE,
                    "a value has at most 65536 bytes\n",
                ))
            }
            Some(_) => Route::Put { key },
        },
        (_, Target::Key(key)) => Route::Delete { key },
    })
}

/// A response: status, `Content-Type` and body, and the `Allow` header
/// for a 405.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Status,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub allow: Option<&'static str>,
    /// Send the headers only (a HEAD request): `Content-Length` is still
    /// the body's.
    pub head_only: bool,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: Status, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.as_bytes().to_vec(),
            allow: None,
            head_only: false,
        }
    }

    /// The answer to a rejected request.
    pub fn rejection(rejection: Rejection) -> Response {
        let mut response = Response::text(rejection.status, rejection.message);
        response.allow = rejection.allow;
        response
    }

    /// The bytes on the wire; `keep_alive` says whether the connection
    /// stays open.
    pub fn to_bytes(&self, keep_alive: bool) -> Vec<u8> {
        let status = self.status;
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nServer: tender-kv\r\n",
            status.0,
            status.reason()
        );
        if !status.bodiless() {
            out.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                self.content_type,
                self.body.len()
            ));
        }
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        let mut out = out.into_bytes();
        if !status.bodiless() && !self.head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
