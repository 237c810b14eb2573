//! Shared fixture of the cluster tests (`redis_fanout`, `presence_cluster`, `recovery_cluster`):
//! a `redis-server` of their own, example nodes started with `--redis`, and a Node script that
//! asks the test to act (kill Redis, start it again, start or kill a node) over stdin / stdout.
//!
//! The protocol: the script prints `@@ <action>` on stdout and waits for one line on stdin,
//! `ok`, `ok <value>`, or an error message (on one line). Every other line it prints is echoed
//! to the test's output (lines starting with `#` are measurements).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Server;

/// A `redis-server` of our own, on 127.0.0.1; killed (by PID) when dropped.
pub struct Redis {
    child: Option<Child>,
    /// The port it listens on, on 127.0.0.1 (the same after [`Redis::start_on`] again).
    pub port: u16,
}

impl Redis {
    /// Starts one on a free port.
    pub fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Redis::start_on(port)
    }

    /// Starts one on `port` (again, after [`Redis::kill`]: empty, without persistence) and
    /// waits until it answers PING.
    pub fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--port"])
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): run scripts/test, which installs it")
            });
        let mut redis = Redis {
            child: Some(child),
            port,
        };
        let started = Instant::now();
        while !redis.answers() {
            if let Some(child) = redis.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {port} exited at start ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server on port {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:PORT`, for `--redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, by PID: the server vanishes as in a crash, with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills this one (if it still runs) and starts an empty one on the same port.
    pub fn restart(&mut self) {
        let port = self.port;
        self.kill();
        *self = Redis::start_on(port);
    }

    /// Starts a node of `example` on this Redis: `--redis <url>` then `args`.
    pub fn start_node(&self, example: &str, args: &[&str]) -> Server {
        let url = self.url();
        let args: Vec<&str> = ["--redis", url.as_str()]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        Server::start(example, &args)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Fails clearly when the built `example` predates `--redis` (`cargo test --test X` does not
/// rebuild examples; `cargo test --workspace` and `cargo build --examples` do): it must refuse
/// an invalid Redis URL instead of ignoring the flag and serving.
pub fn assert_knows_redis(example: &str) {
    let exe = std::env::current_exe().expect("current exe");
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>")
        .join("examples")
        .join(example);
    let mut child = Command::new(&binary)
        .args(["--port", "0", "--redis", "not a redis url"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}): build the examples (cargo build --examples)",
                binary.display()
            )
        });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert!(
        status.is_some_and(|s| !s.success())
            && (err.contains("invalid Redis URL") || err.contains("InvalidUrl")),
        "{} does not know --redis (stale build?): run `cargo build --examples` or \
         `cargo test --workspace` first; it said: {err}",
        binary.display()
    );
}

/// Stops `node`, asserting that it was still running (named `name` in the message), and
/// returns what it logged.
pub fn stop_running(mut node: Server, name: impl std::fmt::Display) -> String {
    let running = node.is_running();
    let log = node.stop();
    assert!(running, "node {name} is not running any more:\n{log}");
    log
}

/// A Node script of `tests/js/` that the test drives over stdin / stdout (see the module docs).
pub struct Script<'a> {
    /// Its file name in `tests/js/`.
    pub file: &'a str,
    /// The packages it needs in `node_modules`.
    pub packages: &'a [&'a str],
    /// The longest one scenario may run.
    pub limit: Duration,
}

impl Script<'_> {
    /// Runs `node tests/js/<file> <scenario>` with `env`, answering its `@@ action` requests
    /// with `act` (`Ok(value)` goes back as `ok value`, or `ok` when it is empty); fails the
    /// test with the script's output unless it exits 0 within the limit.
    pub fn run(
        &self,
        scenario: &str,
        env: &[(&str, String)],
        mut act: impl FnMut(&str) -> Result<String, String>,
    ) {
        let Script {
            file,
            packages,
            limit,
        } = *self;
        let root = super::root();
        assert!(
            packages
                .iter()
                .all(|package| root.join("node_modules").join(package).exists()),
            "node_modules missing: run scripts/test (it runs `npm ci`)"
        );
        let mut child = Command::new("node")
            .arg(root.join("tests/js").join(file))
            .arg(scenario)
            .current_dir(&root)
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node is installed");
        let mut stdin = child.stdin.take().expect("stdin piped");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut stderr = child.stderr.take().expect("stderr piped");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + limit;
        let mut out = String::new();
        let finished = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    println!("{line}");
                    out.push_str(&line);
                    out.push('\n');
                    if let Some(action) = line.strip_prefix("@@ ") {
                        let reply = match act(action.trim()) {
                            Ok(value) if value.is_empty() => "ok".to_owned(),
                            Ok(value) => format!("ok {value}"),
                            Err(err) => err.replace('\n', " "),
                        };
                        let _ = writeln!(stdin, "{reply}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break true,
                Err(mpsc::RecvTimeoutError::Timeout) => break false,
            }
        };
        let status = if finished {
            let started = Instant::now();
            loop {
                if let Some(status) = child.try_wait().expect("wait for node") {
                    break Some(status);
                }
                if started.elapsed() > Duration::from_secs(10) {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            None
        };
        if status.is_none() {
            let _ = child.kill();
        }
        let _ = child.wait();
        let err = errors.join().unwrap_or_default();
        match status {
            Some(status) if status.success() => {}
            Some(status) => panic!("{file} {scenario} failed ({status}):\n{out}\n{err}"),
            None => panic!("{file} {scenario} did not finish within {limit:?}:\n{out}\n{err}"),
        }
    }
}
