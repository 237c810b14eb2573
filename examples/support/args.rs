//! Command-line flags shared by the examples: `--host`, `--port` and the Engine.IO knobs.

use std::time::Duration;

/// Flags every example understands.
#[derive(Debug, Clone)]
pub struct Args {
    pub host: String,
    pub port: u16,
    pub ping_interval: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub max_payload: Option<usize>,
    /// Flags this module does not know, as `(name, value)`, for the example itself.
    pub rest: Vec<(String, String)>,
}

impl Args {
    /// Parses `std::env::args()`; exits with a message on a bad flag.
    pub fn parse(default_port: u16) -> Args {
        let mut args = Args {
            host: "127.0.0.1".to_owned(),
            port: default_port,
            ping_interval: None,
            ping_timeout: None,
            max_payload: None,
            rest: Vec::new(),
        };
        let mut iter = std::env::args().skip(1);
        while let Some(flag) = iter.next() {
            let Some(value) = iter.next() else {
                fail(&format!("flag {flag} needs a value"));
            };
            match flag.as_str() {
                "--host" => args.host = value,
                "--port" => args.port = number(&flag, &value),
                "--ping-interval" => {
                    args.ping_interval = Some(Duration::from_millis(number(&flag, &value)))
                }
                "--ping-timeout" => {
                    args.ping_timeout = Some(Duration::from_millis(number(&flag, &value)))
                }
                "--max-payload" => args.max_payload = Some(number(&flag, &value)),
                other if other.starts_with("--") => args.rest.push((other.to_owned(), value)),
                other => fail(&format!("unexpected argument {other}")),
            }
        }
        args
    }

    /// Every value of an example's own flag that may be given several times.
    #[allow(dead_code, reason = "not every example has such flags")]
    pub fn flags<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.rest
            .iter()
            .filter(move |(flag, _)| flag == name)
            .map(|(_, value)| value.as_str())
    }

    /// An example's own flag given in milliseconds, if given; exits with a message when it is
    /// not a number.
    #[allow(dead_code, reason = "not every example has such flags")]
    pub fn millis(&self, name: &str) -> Option<Duration> {
        self.flag(name)
            .map(|value| Duration::from_millis(number(name, value)))
    }

    /// The value of an example's own flag (`--redis`, `--workers` ...), if given.
    #[allow(dead_code, reason = "not every example has flags of its own")]
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.rest
            .iter()
            .find_map(|(flag, value)| (flag == name).then_some(value.as_str()))
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| fail(&format!("{flag} expects a number, got {value:?}")))
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
