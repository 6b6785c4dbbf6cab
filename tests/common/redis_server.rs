//! A real Redis server on a loopback port, started and stopped by the test that needs it. Its data
//! lives in an append-only file written on every change, so a restart loses nothing — as a
//! production store configured for durability would.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) Redis server. Dropping it kills the server.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    /// TLS only (`rediss://`): the server's certificate and key, signed by a CA of the test's.
    tls: Option<(PathBuf, PathBuf)>,
}

/// The key every shared-state test configures (32 bytes as hex).
pub const STATE_KEY: &str = "8f1e3c5a7b9d0f2e4c6a8b0d2f4e6c8a1b3d5f7e9c0a2b4d6f8e0c2a4b6d8f0e";

impl RedisServer {
    /// Starts a server, or returns `None` after saying why when `redis-server` is not installed
    /// here. Under CI (`CI` set) a missing server fails the test instead: CI installs it.
    pub fn start(test: &str) -> Option<Self> {
        Self::start_with(test, None)
    }

    /// [`RedisServer::start`] with `requirepass`.
    /// A server that speaks only TLS, with a certificate for `localhost` and 127.0.0.1 signed
    /// by a fresh CA; returns it with the CA's certificate file (PEM).
    pub fn start_tls(test: &str) -> Option<(Self, PathBuf)> {
        if !installed() {
            return skip(test);
        }
        let dir = super::temp_dir(&format!("redis-tls-{test}"));
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=bitrix24-mcp test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: super::temp_dir(&format!("redis-{test}")),
            password: None,
            tls: Some((dir.join("server.pem"), dir.join("server.key"))),
        };
        server.run();
        Some((server, dir.join("ca.pem")))
    }

    pub fn start_with(test: &str, password: Option<&str>) -> Option<Self> {
        if !installed() {
            return skip(test);
        }
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: super::temp_dir(&format!("redis-{test}")),
            password: password.map(str::to_owned),
            tls: None,
        };
        server.run();
        Some(server)
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (SIGKILL: nothing is saved at exit; every change is already in the file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn run(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        let port = self.port.to_string();
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        // Ready when it answers PING (bounded: a server that never comes up fails the test).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = if self.tls.is_some() {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                self.connection()
                    .is_some_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
            };
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> Option<redis::Connection> {
        let url = match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}/0", self.port),
            None => self.url(),
        };
        redis::Client::open(url)
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()
    }

    /// Every key and its raw value, as anyone with access to the store would see them.
    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut connection = self.connection().expect("redis answers");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).unwrap();
        keys.into_iter()
            .map(|key| {
                let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut connection).unwrap();
                (key, value)
            })
            .collect()
    }

    /// The raw value at `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection().expect("redis answers");
        redis::cmd("GET").arg(key).query(&mut connection).unwrap()
    }
}

fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Without `redis-server`: fails under CI (which installs it), else says why the test is skipped.
fn skip<T>(test: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: redis-server is not installed; .ci/run installs it with apt-get");
    }
    eprintln!(
        "SKIPPED {test}: needs redis-server on PATH (apt-get install redis-server, or \
         valkey-server linked as redis-server); CI runs it"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
