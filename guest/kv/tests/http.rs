//! The HTTP layer: request heads and routes (pure), and the connection
//! loop over a scripted connection on the mock tender's virtual clock,
//! with the store on the fake disk.

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use common::{value, Model};
use hvt_runtime::testing::run;
use hvt_runtime::time::Duration;
use kv::fake::FakeDisk;
use kv::http::{
    parse_head, parse_target, percent_decode, route, RequestHead, Route, Status, Target,
};
use kv::service::{Connection, Limits, Service};
use kv::store::Store;

fn head(text: &str) -> Result<RequestHead<'_>, Status> {
    parse_head(text.as_bytes()).map_err(|r| r.status)
}

fn route_of(text: &str) -> Result<Route, Status> {
    route(&head(text)?).map_err(|r| r.status)
}

fn key(k: &[u8]) -> Vec<u8> {
    k.to_vec()
}

#[test]
fn request_heads() {
    let h = head("GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(
        (h.method, h.target, h.http11, h.keep_alive),
        ("GET", "/a", true, true)
    );
    assert_eq!(h.content_length, None);
    let h = head("PUT /a HTTP/1.0\r\nContent-Length:  12 \r\n\r\n").unwrap();
    assert_eq!(
        (h.http11, h.keep_alive, h.content_length),
        (false, false, Some(12))
    );
    let h = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
    assert!(h.keep_alive);
    let h = head("GET / HTTP/1.1\r\nconnection: foo, close\r\n\r\n").unwrap();
    assert!(!h.keep_alive);
    let h = head("PUT /a HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").unwrap();
    assert!(h.expect_continue);
    let same = "PUT /a HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
    assert_eq!(head(same).unwrap().content_length, Some(3));

    for (bad, status) in [
        ("GET /a HTTP/1.1\r\n\r\n\r\n", 400),
        ("GET  /a HTTP/1.1\r\n\r\n", 400),
        ("GET /a\r\n\r\n", 400),
        ("GET /a HTTP/1.1 x\r\n\r\n", 400),
        ("G(T /a HTTP/1.1\r\n\r\n", 400),
        ("GET /a HTTP/2.0\r\n\r\n", 505),
        ("GET /a HTTP/1.1x\r\n\r\n", 400),
        ("GET /a FTP/1.1\r\n\r\n", 400),
        ("GET /a HTTP/1.1\r\nno colon\r\n\r\n", 400),
        ("GET /a HTTP/1.1\r\nbad name: x\r\n\r\n", 400),
        ("GET /a HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        ("PUT /a HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
        ("PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        ("PUT /a HTTP/1.1\r\nContent-Length: 1,1\r\n\r\n", 400),
        ("PUT /a HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
        (
            "PUT /a HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
        ),
        (
            "PUT /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        ("PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
        ("PUT /a HTTP/1.1\r\nExpect: magic\r\n\r\n", 417),
    ] {
        assert_eq!(head(bad).unwrap_err(), Status(status), "{bad:?}");
    }
    assert_eq!(
        parse_head(b"GET /\xff HTTP/1.1\r\n\r\n")
            .unwrap_err()
            .status
            .0,
        400
    );
}

#[test]
fn percent_decoding_and_targets() {
    assert_eq!(percent_decode("a%2Fb%2f%41%7e+").unwrap(), b"a/b/A~+");
    assert_eq!(percent_decode("%00%ff").unwrap(), [0, 255]);
    for bad in ["%", "%4", "%zz", "a%g1", "%%41"] {
        assert_eq!(percent_decode(bad), None, "{bad}");
    }
    assert_eq!(parse_target("/").unwrap(), Target::Root);
    assert_eq!(parse_target("/?x=1").unwrap(), Target::Root);
    assert_eq!(parse_target("/k?x=1").unwrap(), Target::Key(key(b"k")));
    assert_eq!(parse_target("/a%2Fb").unwrap(), Target::Key(key(b"a/b")));
    assert_eq!(
        parse_target("/%E2%82%AC").unwrap(),
        Target::Key("€".as_bytes().to_vec())
    );
    let longest = format!("/{}", "k".repeat(255));
    assert_eq!(
        parse_target(&longest).unwrap(),
        Target::Key(vec![b'k'; 255])
    );
    let encoded = format!("/{}", "%00".repeat(255));
    assert_eq!(parse_target(&encoded).unwrap(), Target::Key(vec![0; 255]));
    for (bad, status) in [
        ("/a/b", 400),
        ("/a/", 400),
        ("//", 400),
        ("*", 400),
        ("http://host/k", 400),
        ("/%zz", 400),
        ("/a%2", 400),
        ("/\u{e9}", 400),
        (&*format!("/{}", "k".repeat(256)), 414),
        (&*format!("/{}", "%41".repeat(256)), 414),
    ] {
        assert_eq!(
            parse_target(bad).unwrap_err().status,
            Status(status),
            "{bad}"
        );
    }
}

#[test]
fn routes() {
    let r = |text: &str| route_of(text);
    assert_eq!(
        r("GET / HTTP/1.1\r\n\r\n").unwrap(),
        Route::Counts { head: false }
    );
    assert_eq!(
        r("HEAD / HTTP/1.1\r\n\r\n").unwrap(),
        Route::Counts { head: true }
    );
    assert_eq!(
        r("GET /k%20y HTTP/1.1\r\n\r\n").unwrap(),
        Route::Get {
            key: key(b"k y"),
            head: false
        }
    );
    assert_eq!(
        r("PUT /k HTTP/1.1\r\nContent-Length: 65536\r\n\r\n").unwrap(),
        Route::Put { key: key(b"k") }
    );
    assert_eq!(
        r("PUT /k HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap(),
        Route::Put { key: key(b"k") }
    );
    assert_eq!(
        r("DELETE /k HTTP/1.1\r\n\r\n").unwrap(),
        Route::Delete { key: key(b"k") }
    );
    for (bad, status) in [
        ("PUT /k HTTP/1.1\r\n\r\n", 411),
        ("PUT /k HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413),
        ("PUT / HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 405),
        ("DELETE / HTTP/1.1\r\n\r\n", 405),
        ("POST /k HTTP/1.1\r\n\r\n", 405),
        ("PATCH /k HTTP/1.1\r\n\r\n", 405),
        ("get /k HTTP/1.1\r\n\r\n", 405),
        ("GET /a/b HTTP/1.1\r\n\r\n", 400),
        ("PUT /%x HTTP/1.1\r\nContent-Length: 1\r\n\r\n", 400),
    ] {
        assert_eq!(r(bad).unwrap_err(), Status(status), "{bad:?}");
    }
    let allow = |text: &str| route(&head(text).unwrap()).unwrap_err().allow;
    assert_eq!(
        allow("POST /k HTTP/1.1\r\n\r\n"),
        Some("GET, HEAD, PUT, DELETE")
    );
    assert_eq!(allow("POST / HTTP/1.1\r\n\r\n"), Some("GET, HEAD"));
}

/// A client's side scripted in advance: chunks to deliver, then the end
/// of the stream (or, with `stall`, nothing ever again).
struct Script {
    input: VecDeque<Vec<u8>>,
    stall: bool,
    output: Vec<u8>,
    closed: bool,
}

impl Connection for Script {
    async fn read(&mut self, buffer: &mut [u8]) -> Result<usize, ()> {
        match self.input.pop_front() {
            Some(mut chunk) => {
                let n = chunk.len().min(buffer.len());
                buffer[..n].copy_from_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.input.push_front(chunk.split_off(n));
                }
                Ok(n)
            }
            None if self.stall => core::future::pending().await,
            None => Ok(0),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> Result<(), ()> {
        assert!(!self.closed, "write after close");
        self.output.extend_from_slice(data);
        Ok(())
    }

    async fn close(&mut self) {
        self.closed = true;
    }
}

/// A response as the client saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits the bytes a server sent into responses (`head`: whether each
/// answered a HEAD request, in order, for those with a body length).
fn replies(mut bytes: &[u8], heads: &[bool]) -> Vec<Reply> {
    let mut out = Vec::new();
    let mut heads = heads.iter();
    while !bytes.is_empty() {
        let end = kv::http::head_end(bytes).expect("a whole response head");
        let text = std::str::from_utf8(&bytes[..end - 4]).unwrap();
        let mut lines = text.split("\r\n");
        let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        let mut reply = Reply {
            status,
            headers,
            body: Vec::new(),
        };
        bytes = &bytes[end..];
        if status >= 200 {
            let head = *heads.next().unwrap_or(&false);
            let length: usize = reply
                .header("Content-Length")
                .map_or(0, |l| l.parse().unwrap());
            if !head {
                reply.body = bytes[..length].to_vec();
                bytes = &bytes[length..];
            }
        }
        out.push(reply);
    }
    out
}

/// What a scripted connection left.
struct Served {
    replies: Vec<Reply>,
    closed: bool,
    /// The store's contents afterwards.
    store: Model,
    /// Virtual time the connection took.
    took: Duration,
}

/// Serves the `chunks` (then the end of the stream, or a stall) on a
/// service over `disk` (formatted if blank).
fn serve(disk: &FakeDisk, chunks: Vec<Vec<u8>>, stall: bool, heads: &[bool]) -> Served {
    serve_after(disk, |_| {}, chunks, stall, heads)
}

/// [`serve`], calling `opened` with the disk once the store is open.
fn serve_after(
    disk: &FakeDisk,
    opened: impl FnOnce(&FakeDisk) + 'static,
    chunks: Vec<Vec<u8>>,
    stall: bool,
    heads: &[bool],
) -> Served {
    let result = Rc::new(RefCell::new(None));
    let out = result.clone();
    let disk = disk.clone();
    let outcome = run("", move |_| async move {
        let store = Store::open(disk.clone()).map_err(|e| e.to_string())?;
        opened(&disk);
        let service = Service::new(store, Limits::default());
        let mut script = Script {
            input: chunks.into(),
            stall,
            output: Vec::new(),
            closed: false,
        };
        let start = hvt_runtime::time::Instant::now();
        service.serve(&mut script).await;
        let took = start.elapsed();
        // What GET would answer for each key (a corrupt record: nothing).
        let mut store = service.store();
        let keys: Vec<Vec<u8>> = store.keys().map(|k| k.to_vec()).collect();
        let model: Model = keys
            .into_iter()
            .filter_map(|k| store.get(&k).ok().flatten().map(|v| (k, v)))
            .collect();
        drop(store);
        *out.borrow_mut() = Some((script, model, took));
        Ok::<(), String>(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
    let (script, store, took) = result.borrow_mut().take().unwrap();
    Served {
        replies: replies(&script.output, heads),
        closed: script.closed,
        store,
        took,
    }
}

fn statuses(served: &Served) -> Vec<u16> {
    served.replies.iter().map(|r| r.status).collect()
}

fn put(key: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "PUT /{key} HTTP/1.1\r\nHost: kv\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

fn get(key: &str) -> Vec<u8> {
    format!("GET /{key} HTTP/1.1\r\nHost: kv\r\n\r\n").into_bytes()
}

fn delete(key: &str) -> Vec<u8> {
    format!("DELETE /{key} HTTP/1.1\r\n\r\n").into_bytes()
}

fn disk() -> FakeDisk {
    FakeDisk::new(512, 2000)
}

#[test]
fn pipelined_requests_on_one_connection() {
    let big = value(1, 65536);
    let requests = [
        put("a", b"one"),
        put("a", b"two"),
        get("a"),
        put("big", &big),
        get("big"),
        delete("a"),
        get("a"),
        delete("a"),
        b"HEAD /big HTTP/1.1\r\n\r\n".to_vec(),
        put("empty", b""),
        get("empty"),
        get(""),
    ]
    .concat();
    let served = serve(
        &disk(),
        vec![requests],
        false,
        &[false, false, false, false, false, false, false, false, true],
    );
    assert_eq!(
        statuses(&served),
        [201, 204, 200, 201, 200, 204, 404, 404, 200, 201, 200, 200]
    );
    let r = &served.replies;
    assert_eq!(r[2].body, b"two");
    assert_eq!(
        r[2].header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(r[4].body, big);
    assert_eq!(r[8].header("Content-Length"), Some("65536"));
    assert!(r[8].body.is_empty());
    assert_eq!(r[10].body, b"");
    let counts = String::from_utf8(r[11].body.clone()).unwrap();
    assert!(
        counts.starts_with("keys 2\nvalue_bytes 65536\n"),
        "{counts}"
    );
    assert!(
        counts.contains("\nputs 4\n") && counts.contains("\ndeletes 2\n"),
        "{counts}"
    );
    assert!(r
        .iter()
        .all(|r| r.header("Connection") == Some("keep-alive")));
    assert!(served.closed, "closed at the end of the stream");
    assert_eq!(served.store.len(), 2);
}

#[test]
fn requests_a_byte_at_a_time() {
    let bytes = [put("k", &value(2, 3000)), get("k")].concat();
    let chunks = bytes.iter().map(|&b| vec![b]).collect();
    let served = serve(&disk(), chunks, false, &[]);
    assert_eq!(statuses(&served), [201, 200]);
    assert_eq!(served.replies[1].body, value(2, 3000));
}

#[test]
fn a_body_cut_short_is_400_and_changes_nothing() {
    let mut request = put("k", &value(3, 100));
    request.truncate(request.len() - 1);
    let served = serve(&disk(), vec![put("a", b"1"), request], false, &[]);
    assert_eq!(statuses(&served), [201, 400]);
    assert!(served.closed);
    assert_eq!(
        served.store.keys().cloned().collect::<Vec<_>>(),
        [key(b"a")]
    );
}

#[test]
fn a_head_cut_short_is_400() {
    let served = serve(&disk(), vec![b"GET /a HTTP/1.1\r\nHo".to_vec()], false, &[]);
    assert_eq!(statuses(&served), [400]);
    assert!(served.closed);
}

#[test]
fn an_oversized_value_is_413_and_the_connection_goes_on() {
    let body = value(4, 65537);
    let served = serve(&disk(), vec![put("k", &body), get("k")], false, &[]);
    assert_eq!(statuses(&served), [413, 404]);
    assert!(served.store.is_empty());
    // The body skipped in pieces, the next request in the last one.
    let bytes = [put("k", &body), put("j", b"v"), get("j")].concat();
    let chunks = bytes.chunks(1000).map(|c| c.to_vec()).collect();
    let served = serve(&disk(), chunks, false, &[]);
    assert_eq!(statuses(&served), [413, 201, 200]);
    assert_eq!(served.replies[2].body, b"v");
}

#[test]
fn with_expect_100_continue() {
    let mut request =
        b"PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n".to_vec();
    let served = serve(
        &disk(),
        vec![request.clone(), b"hello".to_vec(), get("k")],
        false,
        &[],
    );
    assert_eq!(statuses(&served), [100, 201, 200]);
    assert_eq!(served.replies[2].body, b"hello");
    // Refused before the body is sent: no 100, the connection closes.
    request = b"PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n".to_vec();
    let served = serve(&disk(), vec![request, get("k")], false, &[]);
    assert_eq!(statuses(&served), [413]);
    assert_eq!(served.replies[0].header("Connection"), Some("close"));
    assert!(served.closed && served.store.is_empty());
}

#[test]
fn bad_requests_are_4xx_and_change_nothing() {
    let requests = [
        b"PATCH /k HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"POST / HTTP/1.1\r\n\r\n".to_vec(),
        put("a/b", b"x"),
        put("%zz", b"x"),
        put(&"k".repeat(256), b"x"),
        b"PUT /k HTTP/1.1\r\n\r\n".to_vec(),
        b"DELETE / HTTP/1.1\r\n\r\n".to_vec(),
        get("k"),
    ];
    let served = serve(&disk(), vec![requests.concat()], false, &[]);
    assert_eq!(statuses(&served), [405, 405, 400, 400, 414, 411, 405, 404]);
    assert_eq!(
        served.replies[0].header("Allow"),
        Some("GET, HEAD, PUT, DELETE")
    );
    assert_eq!(served.replies[1].header("Allow"), Some("GET, HEAD"));
    assert!(served.store.is_empty());
    assert!(served
        .replies
        .iter()
        .all(|r| r.header("Connection") == Some("keep-alive")));
}

#[test]
fn framing_errors_close_the_connection() {
    for (request, status) in [
        (b"GARBAGE\r\n\r\n".to_vec(), 400),
        (
            b"PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
            411,
        ),
        (
            b"PUT /k HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400,
        ),
        (
            format!("GET /k HTTP/1.1\r\nX: {}\r\n\r\n", "x".repeat(9000)).into_bytes(),
            431,
        ),
    ] {
        let served = serve(&disk(), vec![request, get("k")], false, &[]);
        assert_eq!(statuses(&served), [status]);
        assert!(served.closed);
        assert!(served.store.is_empty());
    }
}

#[test]
fn http_1_0_and_connection_close() {
    let requests = [
        put("a", b"1"),
        b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
        get("a"),
    ]
    .concat();
    let served = serve(&disk(), vec![requests], false, &[]);
    assert_eq!(statuses(&served), [201, 200]);
    assert_eq!(served.replies[1].header("Connection"), Some("close"));
    let served = serve(
        &disk(),
        vec![b"GET / HTTP/1.0\r\n\r\n".to_vec(), get("a")],
        false,
        &[],
    );
    assert_eq!(statuses(&served), [200]);
    assert!(served.closed);
}

#[test]
fn a_stalled_body_is_408_and_changes_nothing() {
    let mut request = put("k", &value(5, 100));
    request.truncate(request.len() - 10);
    let served = serve(&disk(), vec![request], true, &[]);
    assert_eq!(statuses(&served), [408]);
    assert!(served.closed && served.store.is_empty());
    assert_eq!(served.took, Limits::default().stall);
}

#[test]
fn an_idle_connection_is_closed_quietly() {
    let served = serve(&disk(), vec![put("k", b"v")], true, &[]);
    assert_eq!(statuses(&served), [201]);
    assert!(served.closed);
    assert_eq!(served.took, Limits::default().idle);
}

#[test]
fn a_full_store_answers_507_and_changes_nothing() {
    // Regions of 10 blocks: four values of two blocks and a third one.
    let disk = FakeDisk::new(512, 22);
    let two = |i| value(i, 600);
    let mut requests: Vec<Vec<u8>> = (0..5).map(|i| put(&format!("k{i}"), &two(i))).collect();
    requests.push(put("k5", &two(5)));
    requests.push(put("k0", &value(9, 1500)));
    let served = serve(&disk, vec![requests.concat()], false, &[]);
    assert_eq!(statuses(&served), [201, 201, 201, 201, 201, 507, 507]);
    let before = disk.contents();
    let expected: Model = (0..5)
        .map(|i| (format!("k{i}").into_bytes(), two(i)))
        .collect();
    assert_eq!(served.store, expected);
    let served = serve(&disk, vec![put("k6", &two(6))], false, &[]);
    assert_eq!(statuses(&served), [507]);
    assert_eq!(disk.contents(), before);
}

#[test]
fn a_corrupt_value_is_500_never_the_data() {
    let disk = disk();
    serve(&disk, vec![put("k", b"secret value")], false, &[]);
    let corrupt = |disk: &FakeDisk| disk.modify(|d| d[2 * 512 + 40] ^= 1);
    let served = serve_after(&disk, corrupt, vec![get("k"), get("")], false, &[]);
    assert_eq!(statuses(&served), [500, 200]);
    let counts = String::from_utf8_lossy(&served.replies[1].body).into_owned();
    assert!(counts.contains("\nerrors 1\n"), "{counts}");
    let body = String::from_utf8_lossy(&served.replies[0].body).into_owned();
    assert!(!body.contains("secret"), "{body}");
}
