//! The HTTP service: a connection loop (keep-alive, pipelining,
//! `Expect: 100-continue`, time limits) over any [`Connection`], and the
//! store operations behind the routes.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /KEY`, body = value | 201 created, 204 replaced |
//! | `GET /KEY`, `HEAD /KEY` | 200 with the value, 404 |
//! | `DELETE /KEY` | 204 deleted, 404 |
//! | `GET /`, `HEAD /` | 200, counts (`name value` lines) |
//!
//! Refused, changing nothing: a malformed head (400, then the connection
//! is closed), a head over 8 KiB (431), an unknown method or one `/` does
//! not take (405 with `Allow`), a bad key (400: not one path segment, bad
//! percent-encoding; 414: over 255 bytes), a PUT without `Content-Length`
//! (411; a `Transfer-Encoding` too), a value over 64 KiB (413), a body cut
//! short by the end of the connection (400) or by the time limit (408);
//! 507 when the live data would not fit, 403 on a read-only device, 500
//! when the device fails or a record is corrupt (never its data), 503
//! once the store must be reopened.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use hvt_runtime::log;
use hvt_runtime::net::TcpStream;
use hvt_runtime::time::{timeout, Duration};

use crate::disk::Disk;
use crate::http::{
    head_end, parse_head, route, Rejection, Response, Route, Status, CONTINUE, MAX_HEAD,
};
use crate::store::{Put, Store, StoreError};

/// A byte stream to a client.
// reason: the executor is single-threaded; no caller needs Send futures.
#[allow(async_fn_in_trait)]
pub trait Connection {
    /// Reads some bytes; `Ok(0)` at the end of the stream.
    async fn read(&mut self, buffer: &mut [u8]) -> Result<usize, ()>;
    /// Writes all of `data`.
    async fn write_all(&mut self, data: &[u8]) -> Result<(), ()>;
    /// Sends what is buffered and closes the connection.
    async fn close(&mut self);
}

impl Connection for TcpStream {
    async fn read(&mut self, buffer: &mut [u8]) -> Result<usize, ()> {
        TcpStream::read(self, buffer).await.map_err(|_| ())
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ()> {
        TcpStream::write_all(self, data).await.map_err(|_| ())
    }

    async fn close(&mut self) {
        self.shutdown();
        let _ = self.flush().await;
    }
}

/// Time limits of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection with no request under way is closed after this long
    /// without a byte.
    pub idle: Duration,
    /// A request (head or body) that stalls this long is answered 408.
    pub stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle: Duration::from_secs(60),
            stall: Duration::from_secs(30),
        }
    }
}

/// Bodies of refused requests up to this size are read and dropped, so
/// that the connection stays usable; a longer one closes it.
pub const DISCARD_MAX: u64 = 1 << 20;

/// What the service counted.
#[derive(Debug, Default)]
struct Counters {
    connections: Cell<u64>,
    requests: Cell<u64>,
    gets: Cell<u64>,
    puts: Cell<u64>,
    deletes: Cell<u64>,
    rejected: Cell<u64>,
    errors: Cell<u64>,
}

fn bump(counter: &Cell<u64>) {
    counter.set(counter.get() + 1);
}

/// The store behind HTTP.
pub struct Service<D: Disk> {
    store: RefCell<Store<D>>,
    limits: Limits,
    counters: Counters,
}

enum Read {
    Data(usize),
    End,
    Timeout,
}

enum Body {
    Complete(Vec<u8>),
    Truncated,
    Timeout,
}

impl<D: Disk> Service<D> {
    /// A service over `store`.
    pub fn new(store: Store<D>, limits: Limits) -> Service<D> {
        Service {
            store: RefCell::new(store),
            limits,
            counters: Counters::default(),
        }
    }

    /// The store (not to be held across an await).
    pub fn store(&self) -> core::cell::RefMut<'_, Store<D>> {
        self.store.borrow_mut()
    }

    /// Carries out a routed request with its body.
    pub fn handle(&self, route: Route, body: &[u8]) -> Response {
        let c = &self.counters;
        let mut store = self.store.borrow_mut();
        let result = match route {
            Route::Counts { head } => {
                let mut response = Response::text(Status::OK, &self.counts(&store));
                response.head_only = head;
                return response;
            }
            Route::Get { key, head } => {
                bump(&c.gets);
                store.get(&key).map(|value| match value {
                    Some(value) => Response {
                        status: Status::OK,
                        content_type: "application/octet-stream",
                        body: value,
                        allow: None,
                        head_only: head,
                    },
                    None => Response::text(Status::NOT_FOUND, "no such key\n"),
                })
            }
            Route::Put { key } => {
                bump(&c.puts);
                store.put(&key, body).map(|put| match put {
                    Put::Created => Response::text(Status::CREATED, ""),
                    Put::Replaced => Response::text(Status::NO_CONTENT, ""),
                })
            }
            Route::Delete { key } => {
                bump(&c.deletes);
                store.delete(&key).map(|found| {
                    if found {
                        Response::text(Status::NO_CONTENT, "")
                    } else {
                        Response::text(Status::NOT_FOUND, "no such key\n")
                    }
                })
            }
        };
        result.unwrap_or_else(|error| {
            let status = match error {
                StoreError::BadKey => Status::BAD_REQUEST,
                StoreError::ValueTooLarge => Status::PAYLOAD_TOO_LARGE,
                StoreError::Full => Status::INSUFFICIENT_STORAGE,
                StoreError::ReadOnly => Status::FORBIDDEN,
                StoreError::Corrupt | StoreError::Disk(_) => {
                    bump(&c.errors);
                    log::error!("kv: {error}");
                    Status::INTERNAL_ERROR
                }
                StoreError::Broken => Status::SERVICE_UNAVAILABLE,
            };
            Response::text(status, &format!("{error}\n"))
        })
    }

    /// The body of `GET /`.
    fn counts(&self, store: &Store<D>) -> alloc::string::String {
        let c = &self.counters;
        let stats = store.stats();
        format!(
            "keys {}\nvalue_bytes {}\nlive_blocks {}\nlog_blocks {}\nregion_blocks {}\nblock_size {}\n\
             compactions {}\ngeneration {}\nconnections {}\nrequests {}\ngets {}\nputs {}\ndeletes {}\n\
             rejected {}\nerrors {}\n",
            store.len(),
            store.value_bytes(),
            store.live_blocks(),
            store.log_blocks(),
            store.region_blocks(),
            store.block_size(),
            stats.compactions,
            store.superblock().generation,
            c.connections.get(),
            c.requests.get(),
            c.gets.get(),
            c.puts.get(),
            c.deletes.get(),
            c.rejected.get(),
            c.errors.get(),
        )
    }

    async fn read<C: Connection>(&self, conn: &mut C, buffer: &mut [u8], idle: bool) -> Read {
        let limit = if idle {
            self.limits.idle
        } else {
            self.limits.stall
        };
        match timeout(limit, conn.read(buffer)).await {
            Ok(Ok(0)) | Ok(Err(())) => Read::End,
            Ok(Ok(n)) => Read::Data(n),
            Err(_) => Read::Timeout,
        }
    }

    /// The `length` bytes of a body: first what `buffer` holds, then
    /// from the connection.
    async fn body<C: Connection>(&self, conn: &mut C, buffer: &mut Vec<u8>, length: usize) -> Body {
        let mut chunk = vec![0u8; 16 << 10];
        while buffer.len() < length {
            match self.read(conn, &mut chunk, false).await {
                Read::Data(n) => buffer.extend_from_slice(&chunk[..n]),
                Read::End => return Body::Truncated,
                Read::Timeout => return Body::Timeout,
            }
        }
        let rest = buffer.split_off(length);
        Body::Complete(core::mem::replace(buffer, rest))
    }

    /// Drops the `length` bytes of a body (first what `buffer` holds);
    /// `false` if the connection ended or stalled first.
    async fn skip<C: Connection>(&self, conn: &mut C, buffer: &mut Vec<u8>, length: u64) -> bool {
        let mut left = length;
        let held = buffer.len().min(to_len(left));
        buffer.drain(..held);
        left -= held as u64;
        let mut chunk = vec![0u8; 16 << 10];
        while left > 0 {
            let Read::Data(n) = self.read(conn, &mut chunk, false).await else {
                return false;
            };
            let used = n.min(to_len(left));
            // What follows the body is the next request.
            buffer.extend_from_slice(&chunk[used..n]);
            left -= used as u64;
        }
        true
    }

    /// Answers and closes.
    async fn refuse<C: Connection>(&self, conn: &mut C, response: Response) {
        bump(&self.counters.rejected);
        let _ = conn.write_all(&response.to_bytes(false)).await;
        conn.close().await;
    }

    /// Serves the requests of one connection until it ends.
    pub async fn serve<C: Connection>(&self, conn: &mut C) {
        bump(&self.counters.connections);
        let mut buffer: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            // A whole head.
            let end = loop {
                if let Some(end) = head_end(&buffer) {
                    break end;
                }
                if buffer.len() > MAX_HEAD {
                    break MAX_HEAD + 1;
                }
                let idle = buffer.is_empty();
                match self.read(conn, &mut chunk, idle).await {
                    Read::Data(n) => buffer.extend_from_slice(&chunk[..n]),
                    Read::End if idle => return conn.close().await,
                    Read::End => {
                        let cut = Rejection {
                            status: Status::BAD_REQUEST,
                            message: "request head cut short\n",
                            allow: None,
                        };
                        return self.refuse(conn, Response::rejection(cut)).await;
                    }
                    Read::Timeout if idle => return conn.close().await,
                    Read::Timeout => {
                        let text = "request head not received in time\n";
                        let late = Response::text(Status::REQUEST_TIMEOUT, text);
                        return self.refuse(conn, late).await;
                    }
                }
            };
            bump(&self.counters.requests);
            if end > MAX_HEAD {
                let text = "request head over 8192 bytes\n";
                let large = Response::text(Status::HEADERS_TOO_LARGE, text);
                return self.refuse(conn, large).await;
            }
            let (routed, length, keep_alive, expect) = match parse_head(&buffer[..end]) {
                Ok(head) => (
                    route(&head),
                    head.content_length.unwrap_or(0),
                    head.keep_alive,
                    head.expect_continue,
                ),
                Err(rejection) => return self.refuse(conn, Response::rejection(rejection)).await,
            };
            buffer.drain(..end);
            let route = match routed {
                Ok(route) => route,
                Err(rejection) => {
                    // Skip the body and stay open, unless it is long or
                    // the client waits to hear before sending it.
                    let response = Response::rejection(rejection);
                    if expect || length > DISCARD_MAX {
                        return self.refuse(conn, response).await;
                    }
                    if !self.skip(conn, &mut buffer, length).await {
                        return self.refuse(conn, response).await;
                    }
                    bump(&self.counters.rejected);
                    if conn
                        .write_all(&response.to_bytes(keep_alive))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if !keep_alive {
                        return conn.close().await;
                    }
                    continue;
                }
            };
            let length = to_len(length);
            if expect && buffer.len() < length && conn.write_all(CONTINUE).await.is_err() {
                return;
            }
            let body = match self.body(conn, &mut buffer, length).await {
                Body::Complete(body) => body,
                Body::Truncated => {
                    let text = "request body cut short\n";
                    let cut = Response::text(Status::BAD_REQUEST, text);
                    return self.refuse(conn, cut).await;
                }
                Body::Timeout => {
                    let text = "request body not received in time\n";
                    let late = Response::text(Status::REQUEST_TIMEOUT, text);
                    return self.refuse(conn, late).await;
                }
            };
            let response = self.handle(route, &body);
            if conn
                .write_all(&response.to_bytes(keep_alive))
                .await
                .is_err()
            {
                return;
            }
            if !keep_alive {
                return conn.close().await;
            }
        }
    }
}

/// A body length already checked against [`DISCARD_MAX`] or the largest
/// value.
fn to_len(length: u64) -> usize {
    usize::try_from(length).unwrap_or(usize::MAX)
}
