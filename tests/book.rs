//! The book (`make book`): it builds from the chapters, and the build fails
//! on what a reader would see broken: an include of a file that does not
//! exist, an include whose anchor does not exist (mdbook itself would render
//! an empty block), a warning in mdbook's log, a broken link. Each failure is
//! planted in a temporary copy of the book's sources. Then every page of the
//! real book is opened in headless Chromium, which must show no empty code
//! block, no image that did not load and no JavaScript error.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use testkit::{in_ci, Running};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Whether `tool` can run; if not, the test says why it skips (or fails,
/// with CI=true).
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let why = format!("{tool} not found: run `make setup`");
        assert!(!in_ci(), "{test}: {why}; with CI=true a skip is a failure");
        eprintln!("SKIPPED {test}: {why}");
    }
    found
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A copy of what the book is built from (book/, docs/, the sources the
/// chapters include, the build script), removed on drop.
struct BookCopy {
    dir: PathBuf,
}

impl BookCopy {
    fn new() -> BookCopy {
        let dir = std::env::temp_dir().join(format!(
            "lebpf-book-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = BookCopy { dir };
        for part in [
            "book",
            "docs",
            "bpf",
            "src",
            "tests",
            "testkit",
            "scripts",
            "solutions",
            "README.md",
        ] {
            let out = Command::new("cp")
                .arg("-r")
                .arg(Path::new(ROOT).join(part))
                .arg(&copy.dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "cp {part}: {out:?}");
        }
        copy
    }

    /// Appends `text` to `file` (a path in the repository).
    fn append(&self, file: &str, text: &str) {
        let path = self.dir.join(file);
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(file, "\n{text}").unwrap();
    }

    fn build(&self) -> Output {
        Command::new(self.dir.join("scripts/book.sh"))
            .arg(&self.dir)
            .output()
            .unwrap()
    }
}

impl Drop for BookCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Builds `copy` and asserts that the build failed saying `says`.
fn fails_saying(copy: &BookCopy, says: &str) {
    let out = copy.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build passed; stderr: {stderr}");
    assert!(stderr.contains(says), "no {says:?} in: {stderr}");
}

#[test]
fn the_book_builds() {
    if !have("mdbook", "the_book_builds") || !have("mdbook-linkcheck", "the_book_builds") {
        return;
    }
    let copy = BookCopy::new();
    let out = copy.build();
    assert!(out.status.success(), "{out:?}");
    let chapter = copy.dir.join("target/book/html/01-tc_classifier.html");
    let html = std::fs::read_to_string(&chapter).unwrap();
    assert!(
        html.contains("BPF_MAP_TYPE_PERCPU_ARRAY"),
        "chapter 1 lacks its included listing"
    );
}

#[test]
fn a_missing_file_fails_the_build() {
    if !have("mdbook", "a_missing_file_fails_the_build") {
        return;
    }
    let copy = BookCopy::new();
    copy.append(
        "docs/01-tc_classifier.md",
        "```c\n{{#include ../bpf/no_such_file.bpf.c:maps}}\n```",
    );
    fails_saying(&copy, "no_such_file.bpf.c, which does not exist");
}

#[test]
fn a_missing_anchor_fails_the_build() {
    if !have("mdbook", "a_missing_anchor_fails_the_build") {
        return;
    }
    let copy = BookCopy::new();
    copy.append(
        "docs/02-xdp_firewall.md",
        "```c\n{{#include ../bpf/xdp_firewall.bpf.c:no_such_anchor}}\n```",
    );
    fails_saying(&copy, "has no 'ANCHOR: no_such_anchor'");
}

#[test]
fn a_warning_fails_the_build() {
    if !have("mdbook", "a_warning_fails_the_build") {
        return;
    }
    let copy = BookCopy::new();
    // A misspelt table in book.toml: mdbook warns, ignores it, exits 0.
    copy.append("book/book.toml", "[outpt.html]\nno-section-label = true");
    fails_saying(&copy, "mdbook reported the problems above");
}

#[test]
fn a_broken_link_fails_the_build() {
    if !have("mdbook", "a_broken_link_fails_the_build")
        || !have("mdbook-linkcheck", "a_broken_link_fails_the_build")
    {
        return;
    }
    let copy = BookCopy::new();
    copy.append(
        "docs/04-runqlat.md",
        "See [the missing chapter](99-nothing.md).",
    );
    fails_saying(&copy, "99-nothing.md");
}

/// One page as Chromium showed it.
#[derive(Debug, Default)]
struct PageReport {
    empty_code_blocks: u64,
    broken_images: Vec<String>,
    errors: Vec<String>,
}

/// Headless Chromium driven over the DevTools protocol: one tab, pages
/// opened one after the other. The browser is killed when this is dropped.
struct Browser {
    _process: Running,
    _profile: TempDir,
    socket: WebSocket<TcpStream>,
    next_id: u64,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    fn start() -> Browser {
        let profile = TempDir(std::env::temp_dir().join(format!(
            "lebpf-chromium-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        )));
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox", // as root, Chromium refuses to start with its sandbox
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg("about:blank");
        let mut process = Running::spawn(cmd).unwrap();
        let line = process
            .wait_for_stderr("DevTools listening on ws://", Duration::from_secs(30))
            .unwrap();
        let browser_url = &line[line.find("ws://").unwrap()..];
        let port: u16 = browser_url["ws://127.0.0.1:".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // The tab Chromium opened: its own WebSocket, from /json/list.
        let list = http_get(port, "/json/list");
        let tabs: Value = serde_json::from_str(&list).unwrap();
        let tab_url = tabs
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (socket, _) = tungstenite::client(tab_url.as_str(), stream).unwrap();
        let mut browser = Browser {
            _process: process,
            _profile: profile,
            socket,
            next_id: 0,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}), &mut Vec::new());
        }
        browser
    }

    /// Sends one command and returns its result. Events that arrive
    /// meanwhile go to `events`.
    fn call(&mut self, method: &str, params: Value, events: &mut Vec<Value>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.socket.send(Message::text(msg.to_string())).unwrap();
        loop {
            let reply = self.read();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
            events.push(reply);
        }
    }

    fn read(&mut self) -> Value {
        loop {
            match self.socket.read().expect("a message from Chromium") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(_) => panic!("Chromium closed the connection"),
                _ => continue,
            }
        }
    }

    /// Opens `url`, waits for its load event, and reports what went wrong.
    fn open(&mut self, url: &str) -> PageReport {
        let mut events = Vec::new();
        self.call("Page.navigate", json!({"url": url}), &mut events);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !events.iter().any(|e| e["method"] == "Page.loadEventFired") {
            assert!(Instant::now() < deadline, "{url} did not finish loading");
            let event = self.read();
            events.push(event);
        }
        let check = "JSON.stringify({\
            empty: [...document.querySelectorAll('pre code')]\
                .filter(c => c.textContent.trim() === '').length,\
            images: [...document.images]\
                .filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)})";
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": check, "returnByValue": true}),
            &mut events,
        );
        let found: Value =
            serde_json::from_str(result["result"]["value"].as_str().unwrap()).unwrap();
        let mut report = PageReport {
            empty_code_blocks: found["empty"].as_u64().unwrap(),
            broken_images: found["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_str().unwrap().to_string())
                .collect(),
            errors: Vec::new(),
        };
        for event in &events {
            let params = &event["params"];
            match event["method"].as_str() {
                Some("Runtime.exceptionThrown") => report
                    .errors
                    .push(params["exceptionDetails"]["exception"]["description"].to_string()),
                Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                    report.errors.push(params["args"].to_string())
                }
                Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                    report.errors.push(
                        params["entry"]["text"].to_string()
                            + " "
                            + &params["entry"]["url"].to_string(),
                    )
                }
                _ => {}
            }
        }
        report
    }

    fn screenshot(&mut self, path: &Path) {
        let result = self.call(
            "Page.captureScreenshot",
            json!({"format": "png"}),
            &mut Vec::new(),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

/// A plain HTTP/1.1 GET to Chromium's DevTools endpoint; the body.
fn http_get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    // Chromium keeps the connection open: read the body by its length.
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// The built book served over HTTP on 127.0.0.1, the way a reader gets it
/// (mdbook's 404 page, for one, links its styles from the site's root). One
/// thread answers GETs with files under `root` until dropped.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(root: &Path) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let (root, flag) = (root.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve(&root, stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `stream` with a file under `root`, or 404.
fn serve(root: &Path, stream: TcpStream) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(n) if n > 2 => continue,
            _ => break,
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap()
        .trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = root.join(path);
    let (status, body) = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => ("200 OK", body),
        _ => (
            "404 Not Found",
            std::fs::read(root.join("404.html")).unwrap_or_default(),
        ),
    };
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        _ => "application/octet-stream",
    };
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

#[test]
fn every_page_loads_cleanly_in_a_browser() {
    let test = "every_page_loads_cleanly_in_a_browser";
    if !have("mdbook", test) || !have("mdbook-linkcheck", test) || !have("chromium", test) {
        return;
    }
    // The real book, as `make book` builds it.
    let out = Command::new(Path::new(ROOT).join("scripts/book.sh"))
        .output()
        .unwrap();
    assert!(out.status.success(), "make book failed: {out:?}");
    let html = Path::new(ROOT).join("target/book/html");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&html)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .filter(|p| !p.ends_with("print.html") && !p.ends_with("toc.html"))
        .collect();
    pages.sort();
    assert!(pages.len() >= 10, "too few pages: {pages:?}");

    let started = Instant::now();
    let server = Server::start(&html);
    let mut browser = Browser::start();
    let mut problems = Vec::new();
    for page in &pages {
        let name = page.file_name().unwrap().to_string_lossy();
        let report = browser.open(&format!("http://127.0.0.1:{}/{name}", server.port));
        if report.empty_code_blocks > 0
            || !report.broken_images.is_empty()
            || !report.errors.is_empty()
        {
            problems.push(format!("{}: {report:?}", page.display()));
        }
        if page.ends_with("01-tc_classifier.html") {
            browser.screenshot(&html.join("../screenshot-01-tc_classifier.png"));
        }
    }
    eprintln!(
        "opened {} pages in Chromium in {:.1} s; screenshot: target/book/screenshot-01-tc_classifier.png",
        pages.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "pages with problems:\n{}",
        problems.join("\n")
    );
}
