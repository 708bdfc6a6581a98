//! A `weft serve` process for the API tests, and a plain HTTP/1.0 client
//! for it (one request per connection; the answer ends when the server
//! closes), with a reader for server-sent events.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `weft serve`, killed when dropped; its stderr is collected.
pub struct Served {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Everything it wrote on stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `weft serve` on a free port over the database `db`, with
    /// `args` added; waits until it listens.
    pub fn start(cache: &str, db: &Path, args: &[&str]) -> Self {
        let mut cmd = super::weft_db(cache, db, &["serve", "--listen", "127.0.0.1:0", "--poll-ms", "200"]);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn weft serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut reader = BufReader::new(stderr);
        // The lines before the one that says where it listens (the metrics' address, ...).
        let mut said = String::new();
        let addr = loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read weft serve's stderr") == 0 {
                panic!("weft serve did not start:\n{said}");
            }
            said.push_str(&line);
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        };
        let collected = Arc::new(Mutex::new(said));
        let sink = collected.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        Self { child, addr, stderr: collected }
    }

    /// Sends SIGTERM; returns the exit code once it has drained (within 60 s)
    /// and what it wrote on stderr.
    pub fn terminate(mut self) -> (Option<i32>, String) {
        super::send_signal(self.child.id(), "TERM");
        let start = Instant::now();
        let code = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break status.code();
            }
            assert!(start.elapsed() < Duration::from_secs(60), "weft serve did not drain within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        // Its stderr closes with it; the reader thread has seen the rest.
        std::thread::sleep(Duration::from_millis(100));
        let text = self.stderr.lock().unwrap().clone();
        (code, text)
    }

    /// Sends one request; `body` with its content type.
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<(&str, &[u8])>) -> Answer {
        self.request_with(method, path, token, &[], body)
    }

    /// [`Served::request`] with extra headers.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Answer {
        let mut s = TcpStream::connect(&self.addr).expect("connect to weft serve");
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some((ctype, bytes)) = body {
            head.push_str(&format!("Content-Type: {ctype}\r\nContent-Length: {}\r\n", bytes.len()));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        if let Some((_, bytes)) = body {
            // A server that refuses early (413) may close before all is sent.
            let _ = s.write_all(bytes);
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        Answer::parse(&raw)
    }

    /// `GET path` with a JSON answer.
    pub fn get(&self, path: &str, token: &str) -> Answer {
        self.request("GET", path, Some(token), None)
    }

    /// A JSON request.
    pub fn json(&self, method: &str, path: &str, token: &str, body: &Value) -> Answer {
        self.request(method, path, Some(token), Some(("application/json", body.to_string().as_bytes())))
    }

    /// Opens `path` as a stream of server-sent events.
    pub fn events(&self, path: &str, token: &str, last_event_id: Option<u64>) -> Events {
        let mut s = TcpStream::connect(&self.addr).expect("connect to weft serve");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!("GET {path} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n", self.addr);
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("Accept: text/event-stream\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut reader = BufReader::new(s);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
        }
        Events { status_line, reader }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    fn parse(raw: &[u8]) -> Self {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(raw));
        });
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Self { status, headers, body: raw[split + 4..].to_vec() }
    }

    /// The header `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the answer when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// Panics unless this is an RFC 9457 problem with `status` and `slug`;
    /// returns it.
    pub fn problem(&self, status: u16, slug: &str) -> Value {
        assert_eq!(self.status, status, "expected {status} {slug}, got: {}", self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text());
        let p = self.json();
        assert_eq!(p["type"], format!("/problems/{slug}"), "{p}");
        assert_eq!(p["status"], status, "{p}");
        assert!(p["detail"].as_str().is_some_and(|d| d.len() > 20), "a detail that says what to do: {p}");
        p
    }
}

/// A stream of server-sent events.
pub struct Events {
    /// The answer's status line.
    pub status_line: String,
    reader: BufReader<TcpStream>,
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    /// Its id.
    pub id: Option<u64>,
    /// Its name.
    pub event: String,
    /// Its data, as JSON.
    pub data: Value,
}

impl Events {
    /// The next event (comments and keep-alives skipped); None when the stream ended.
    pub fn next_event(&mut self) -> Option<Event> {
        let (mut id, mut event, mut data) = (None, String::new(), String::new());
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                return Some(Event { id, event, data: serde_json::from_str(&data).unwrap_or(Value::Null) });
            }
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Every event until the stream ends, or `within` passes.
    pub fn until_end(&mut self, within: Duration) -> Vec<Event> {
        let start = Instant::now();
        let mut out = Vec::new();
        while start.elapsed() < within {
            match self.next_event() {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }
}

/// The bytes and digest of the built plugin `name`.
pub fn component(name: &str) -> (Vec<u8>, String) {
    let bytes = std::fs::read(super::plugin(name)).unwrap();
    let digest = weft::sandbox::digest(&bytes);
    (bytes, digest)
}

/// Runs `weft tenant ARGS` on `db`; returns its stdout, trimmed.
pub fn tenant_cmd(cache: &str, db: &Path, args: &[&str]) -> String {
    let mut all = vec!["tenant"];
    all.extend_from_slice(args);
    let out = super::weft_db(cache, db, &all).output().unwrap();
    assert!(out.status.success(), "weft tenant {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
