//! moto's S3 server (from PyPI, installed by `tests/s3/venv.sh`) on a loopback port, for the S3
//! tests and benchmarks. The server is killed and reaped when its [`Moto`] is dropped.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        let program = moto_server();
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
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
