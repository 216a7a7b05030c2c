//! moto's S3 server (from PyPI, installed by `tests/s3/venv.sh`) on a loopback port, for the S3
//! tests and benchmarks. The server is killed and reaped when its [`Moto`] is dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running moto S3 server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The `moto_server` program, installing it first when missing.
pub fn moto_server() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3/venv.sh");
    let output = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/s3/venv.sh runs");
    assert!(output.status.success(), "tests/s3/venv.sh failed");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

impl Moto {
    /// Starts moto on a loopback port it picks itself (port 0, so no other process can take
    /// the port between its choice and moto's bind) and waits until it listens, reading the
    /// address from the line it logs then.
    pub fn start() -> Moto {
        let program = moto_server();
        let mut child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("moto_server starts");
        let log = child.stderr.take().expect("stderr is piped");
        let (address, listening) = std::sync::mpsc::channel();
        // Reads the log to its end (moto logs every request there, and must never block on it).
        std::thread::spawn(move || {
            let mut address = Some(address);
            for line in BufReader::new(log).lines() {
                let Ok(line) = line else { break };
                // ` * Running on http://127.0.0.1:PORT` (older werkzeugs add `/ (Press ...)`).
                let url = line.split("Running on ").nth(1).and_then(|rest| {
                    let url = rest.split_whitespace().next()?;
                    Some(url.trim_end_matches('/').to_string())
                });
                if let Some(url) = url {
                    if let Some(address) = address.take() {
                        let _ = address.send(url);
                    }
                }
            }
        });
        let endpoint = match listening.recv_timeout(Duration::from_secs(60)) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("moto did not say where it listens ({e}): it exited or took over 60 s");
            }
        };
        Moto { child, endpoint }
    }

    /// Creates bucket `name` (moto takes unsigned requests).
    pub fn create_bucket(&self, name: &str) {
        let response = reqwest::blocking::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text());
    }

    /// Writes an object directly, behind baton's back.
    pub fn put_object(&self, bucket: &str, key: &str, bytes: &[u8]) {
        let response = reqwest::blocking::Client::new()
            .put(format!("{}/{bucket}/{key}", self.endpoint))
            .body(bytes.to_vec())
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{:?}", response.text());
    }

    /// Reads an object directly; `None` when missing.
    pub fn get_object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}/{bucket}/{key}", self.endpoint))
            .send()
            .unwrap();
        response
            .status()
            .is_success()
            .then(|| response.bytes().unwrap().to_vec())
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
