//! http(s) sources for real: a local HTTP server on a loopback port serving an archive, one that
//! drops the connection mid-body once, one that always does, one too large and one that stalls.
//! A function whose source is an archive URL runs; a dropped connection is retried and leaves
//! no partial file; a truncated body, an oversized one and a stalled one are clear errors.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::code::CodeCache;
use baton::datastore::http::HttpLimits;
use baton::datastore::DataStore;
use baton::error::ErrorKind;
use common::{zip_bytes, TestProject};

/// How the server answers a path.
#[derive(Clone)]
enum Answer {
    /// The whole body.
    Whole(Vec<u8>),
    /// Half the body, then the connection is closed, for the first `n` requests; the whole
    /// body after that.
    DropFirst(Vec<u8>, usize),
    /// Headers announcing `n` bytes, then nothing for a long time.
    Stall(u64),
}

/// A tiny HTTP/1.1 server on a loopback port; every connection is served by its own thread.
struct Site {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl Site {
    fn start(answers: HashMap<&'static str, Answer>) -> Site {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answers = Arc::new(answers);
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let per_path: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (answers, per_path) = (answers.clone(), per_path.clone());
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, &answers, &per_path));
            }
        });
        Site { base, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

fn serve(
    mut stream: TcpStream,
    answers: &HashMap<&'static str, Answer>,
    per_path: &Mutex<HashMap<String, usize>>,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/');
    let hit = {
        let mut counts = per_path.lock().unwrap();
        let count = counts.entry(path.to_string()).or_default();
        *count += 1;
        *count - 1
    };
    let head =
        |len: u64| format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    match answers.get(path) {
        None => {
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
        Some(Answer::Whole(body)) => {
            let _ = stream.write_all(head(body.len() as u64).as_bytes());
            let _ = stream.write_all(body);
        }
        Some(Answer::DropFirst(body, n)) => {
            let _ = stream.write_all(head(body.len() as u64).as_bytes());
            let sent = if hit < *n {
                &body[..body.len() / 2]
            } else {
                &body[..]
            };
            let _ = stream.write_all(sent);
        }
        Some(Answer::Stall(len)) => {
            let _ = stream.write_all(head(*len).as_bytes());
            std::thread::sleep(Duration::from_secs(20));
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

const TRAINER: &str = "def main(p1=1):\n    return p1 + 100\n";

fn package() -> Vec<u8> {
    zip_bytes(&[("trainer.py", TRAINER), ("utils.py", "X = 1\n")])
}

/// The names in the cache's `code/` folder.
fn cache_entries(root: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(root.join("code"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_function_from_an_archive_url_runs_even_when_the_first_download_is_cut_off() {
    let site = Site::start(HashMap::from([
        ("pkg.zip", Answer::Whole(package())),
        ("flaky/pkg.zip", Answer::DropFirst(package(), 1)),
    ]));
    let p = TestProject::new();
    for (name, path) in [("trainer", "pkg.zip"), ("flaky", "flaky/pkg.zip")] {
        p.baton(&[
            "set-function",
            "--name",
            name,
            "--func",
            &site.url(path),
            "--handler",
            "trainer:main",
        ])
        .ok();
    }
    let run = p
        .baton(&["run-function", "trainer", "-p", "p1=1", "--json"])
        .json();
    assert_eq!(run["status"]["results"]["return"], 101, "{run:#}");
    assert_eq!(
        run["status"]["code"]["source"],
        site.url("pkg.zip"),
        "{run:#}"
    );

    let before = site.hits.load(Ordering::SeqCst);
    let run = p
        .baton(&["run-function", "flaky", "-p", "p1=2", "--json"])
        .json();
    assert_eq!(run["status"]["results"]["return"], 102, "{run:#}");
    assert_eq!(
        site.hits.load(Ordering::SeqCst) - before,
        2,
        "the cut-off download was not retried"
    );
    let entries = cache_entries(p.cache.path());
    assert!(entries.iter().all(|e| !e.starts_with('.')), "{entries:?}");
}

#[test]
fn a_workflow_by_url_is_fetched_when_it_runs() {
    let workflow = "name: wf\nsteps:\n  - name: s\n    function: trainer\n    params: {p1: 5}\n    outputs: [return]\n";
    let site = Site::start(HashMap::from([
        ("pkg.zip", Answer::Whole(package())),
        ("wf.yaml", Answer::Whole(workflow.as_bytes().to_vec())),
    ]));
    let p = TestProject::new();
    p.baton(&[
        "set-function",
        "--name",
        "trainer",
        "--func",
        &site.url("pkg.zip"),
        "--handler",
        "trainer:main",
    ])
    .ok();
    p.baton(&[
        "set-workflow",
        "--name",
        "wf",
        "--path",
        &site.url("wf.yaml"),
    ])
    .ok();
    let record = p.baton(&["run", "wf", "--json"]).json();
    assert_eq!(record["state"], "Succeeded", "{record:#}");
    assert_eq!(
        common::step(&record, "s")["outputs"]["return"],
        105,
        "{record:#}"
    );
}

#[test]
fn truncated_oversized_and_stalled_downloads_are_refused_and_leave_nothing() {
    let big = vec![b'x'; 64 * 1024];
    let site = Site::start(HashMap::from([
        ("torn.zip", Answer::DropFirst(package(), usize::MAX)),
        ("big.zip", Answer::Whole(big)),
        ("stall.zip", Answer::Stall(1000)),
    ]));
    let cache_root = tempfile::TempDir::new().unwrap();
    let cache = CodeCache::new(cache_root.path());
    let store = DataStore::new()
        .with_http_limits(HttpLimits {
            max_bytes: 16 * 1024,
            timeout: Duration::from_secs(2),
        })
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let err = cache
            .resolve_url(&site.url("torn.zip"), &store)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = cache
            .resolve_url(&site.url("big.zip"), &store)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadRequest, "{err}");
        assert!(err.to_string().contains("16384-byte limit"), "{err}");
        let started = std::time::Instant::now();
        let err = cache
            .resolve_url(&site.url("stall.zip"), &store)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the deadline did not hold"
        );
        assert_eq!(err.kind(), ErrorKind::Runtime, "{err}");
        let err = cache
            .resolve_url(&site.url("missing.zip"), &store)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    });
    drop(rt);
    assert_eq!(cache_entries(cache_root.path()), Vec::<String>::new());
}
