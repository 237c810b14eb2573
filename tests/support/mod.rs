//! Shared fixture of the integration tests: start an example server on a free loopback port,
//! and run a Node script from `tests/js/` against it; [`redis`] adds what the cluster tests
//! share (a `redis-server` of their own, nodes on it, a script that asks the test to act).
#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Held by a test that must run alone in its test binary (one that measures times on a small
/// machine): the next such test waits until it is dropped. A test that failed while holding it
/// does not stop the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An example server running in its own process; killed when dropped.
pub struct Server {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `target/<profile>/examples/<name> --port 0 <args>` and waits for its
    /// `listening on http://127.0.0.1:PORT` line.
    pub fn start(name: &str, args: &[&str]) -> Server {
        let binary = example_binary(name);
        let mut child = Command::new(&binary)
            .args(["--port", "0"])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .strip_prefix("listening on http://127.0.0.1:")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not print its port within 20 s");
            }
        };
        Server {
            child,
            port,
            stderr: Some(stderr),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process is still running (it must never crash on peer input).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM (a graceful stop request).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill is installed");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits at most `limit` for the process to exit on its own.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server and returns what it logged.
    pub fn stop(mut self) -> String {
        self.kill()
    }

    fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let log = self.kill();
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{log}");
        }
    }
}

fn example_binary(name: &str) -> PathBuf {
    // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples,
    // built by `cargo test` before the tests run.
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let binary = profile_dir.join("examples").join(name);
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds the examples",
        binary.display()
    );
    binary
}

/// Runs `node tests/js/<script> <scenario>` against `url` with extra `env`, failing the test
/// with the script's output when it does not exit 0 within `limit`.
pub fn run_node(script: &str, scenario: &str, url: &str, env: &[(&str, &str)], limit: Duration) {
    let root = root();
    assert!(
        root.join("node_modules/socket.io-client").exists(),
        "node_modules missing: run scripts/test (it runs `npm ci`)"
    );
    let mut child = Command::new("node")
        .arg(root.join("tests/js").join(script))
        .arg(scenario)
        .current_dir(&root)
        .env("TIDINGS_URL", url)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is installed");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!("{script} {scenario} failed ({status}):\n{out}\n{err}"),
        None => panic!("{script} {scenario} did not finish within {limit:?}:\n{out}\n{err}"),
    }
}

/// A tidings app served in this process, on a free loopback port, in a thread of its own;
/// every connection is closed and the server stopped when it is dropped.
pub struct InProcess {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// The app's tidings handle (counts, emitter, Socket.IO server).
    pub tidings: tidings::Tidings,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

/// How many workers an in-process test server runs, and how many connections each holds at
/// once.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    pub count: usize,
    pub max_connections: usize,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            count: 2,
            max_connections: 25_000,
        }
    }
}

/// Which HTTP server an in-process test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpServerKind {
    /// actix-web's `HttpServer`, with `tidings::on_connect`.
    Actix,
    /// `tidings::HttpServer` (WebSockets own their connection).
    Tidings,
}

impl InProcess {
    /// Serves `tidings` (mounted, and also shared as `web::Data<Tidings>`) plus whatever
    /// `routes` adds, with two workers, on `tidings::HttpServer`, or on actix-web's
    /// `HttpServer` when `TIDINGS_TEST_SERVER=actix` (`scripts/test` runs the wire protocols'
    /// tests both ways).
    pub fn start<F>(tidings: tidings::Tidings, routes: F) -> InProcess
    where
        F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    {
        let kind = match std::env::var("TIDINGS_TEST_SERVER").as_deref() {
            Ok("actix") => HttpServerKind::Actix,
            Ok("tidings") | Err(_) => HttpServerKind::Tidings,
            Ok(other) => panic!("TIDINGS_TEST_SERVER is actix or tidings, not {other:?}"),
        };
        InProcess::start_on(kind, tidings, routes)
    }

    /// [`InProcess::start`] on the server `kind`.
    pub fn start_on<F>(kind: HttpServerKind, tidings: tidings::Tidings, routes: F) -> InProcess
    where
        F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    {
        InProcess::start_with(kind, Workers::default(), tidings, routes)
    }

    /// [`InProcess::start_on`] with `workers` instead of two workers of 25,000 connections.
    pub fn start_with<F>(
        kind: HttpServerKind,
        workers: Workers,
        tidings: tidings::Tidings,
        routes: F,
    ) -> InProcess
    where
        F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
    {
        use actix_web::{App, web};
        let app_tidings = tidings.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = move || {
                    App::new()
                        .configure(app_tidings.configure())
                        .app_data(web::Data::new(app_tidings.clone()))
                        .configure(routes.clone())
                };
                let (addrs, server) = match kind {
                    HttpServerKind::Actix => {
                        let server = actix_web::HttpServer::new(app)
                            .workers(workers.count)
                            .max_connections(workers.max_connections)
                            .on_connect(tidings::on_connect)
                            .disable_signals()
                            .shutdown_timeout(1)
                            .bind(("127.0.0.1", 0))?;
                        (server.addrs(), server.run())
                    }
                    HttpServerKind::Tidings => {
                        let server = tidings::HttpServer::new(app)
                            .workers(workers.count)
                            .max_connections(workers.max_connections)
                            .disable_signals()
                            .shutdown_timeout(1)
                            .bind(("127.0.0.1", 0))?;
                        (server.addrs(), server.run())
                    }
                };
                let port = addrs
                    .first()
                    .map(std::net::SocketAddr::port)
                    .expect("bound to one address");
                let _ = tx.send((port, server.handle()));
                server.await
            })
        });
        let (port, handle) = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(started) => started,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the test server did not start: {:?}", thread.join())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the test server did not start within 20 s")
            }
        };
        InProcess {
            port,
            tidings,
            handle,
            thread: Some(thread),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the server thread is still running (it must never die on peer input).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.tidings.shutdown();
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
