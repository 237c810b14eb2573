//! A small Redis client speaking RESP over one connection, for the scenarios that read Redis's
//! counters (`presence`, `history`): `INFO` snapshots (commands by name, `used_memory`), and
//! the integer answers of `HLEN` and `XLEN`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use tidings_bench::cpu_secs;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A connection to Redis speaking RESP, for `INFO`, `HLEN` and `XLEN`.
pub(crate) struct Redis {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A RESP reply (what `INFO`, `HLEN` and `XLEN` answer).
pub(crate) enum Reply {
    Bulk(Vec<u8>),
    Integer(i64),
    Other(String),
}

impl Redis {
    pub(crate) async fn connect(addr: SocketAddr) -> Result<Redis, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        Ok(Redis {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    pub(crate) async fn command(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("redis: {e}"))?;
        loop {
            if let Some((reply, used)) = parse_reply(&self.buf) {
                self.buf.drain(..used);
                return Ok(reply);
            }
            self.buf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) => return Err("redis: closed".to_owned()),
                Ok(_) => {}
                Err(e) => return Err(format!("redis: {e}")),
            }
        }
    }

    /// `INFO stats commandstats memory`, with Redis's CPU time and ours of the moment.
    pub(crate) async fn snapshot(&mut self, redis_pid: Option<u32>) -> Result<Snapshot, String> {
        let info = match self
            .command(&["INFO", "stats", "commandstats", "memory"])
            .await?
        {
            Reply::Bulk(info) => info,
            Reply::Other(line) => return Err(format!("redis: INFO: {line}")),
            Reply::Integer(_) => return Err("redis: INFO answered an integer".to_owned()),
        };
        let info = String::from_utf8_lossy(&info);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
                .unwrap_or(0u64)
        };
        let mut commands = BTreeMap::new();
        for line in info.lines() {
            if let Some((name, stats)) = line
                .strip_prefix("cmdstat_")
                .and_then(|l| l.split_once(':'))
                && let Some(calls) = stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse().ok())
            {
                commands.insert(name.to_uppercase(), calls);
            }
        }
        Ok(Snapshot {
            at: Instant::now(),
            total: field("total_commands_processed"),
            commands,
            used_memory: field("used_memory"),
            cpu: redis_pid.and_then(cpu_secs),
        })
    }

    pub(crate) async fn hlen(&mut self, key: &str) -> Result<u64, String> {
        self.integer(&["HLEN", key]).await
    }

    pub(crate) async fn xlen(&mut self, key: &str) -> Result<u64, String> {
        self.integer(&["XLEN", key]).await
    }

    /// A command that answers an integer (negative ones read as 0).
    async fn integer(&mut self, args: &[&str]) -> Result<u64, String> {
        let name = args.first().copied().unwrap_or_default();
        match self.command(args).await? {
            Reply::Integer(n) => Ok(u64::try_from(n).unwrap_or(0)),
            Reply::Other(line) => Err(format!("redis: {name}: {line}")),
            Reply::Bulk(_) => Err(format!("redis: {name} answered a bulk string")),
        }
    }
}

/// One whole RESP reply at the start of `buf` (simple string, error, integer or bulk string),
/// and its length; `None` until it is all there.
pub(crate) fn parse_reply(buf: &[u8]) -> Option<(Reply, usize)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..line_end]).ok()?;
    match buf.first()? {
        b':' => Some((Reply::Integer(line.parse().ok()?), line_end + 2)),
        b'$' => {
            let len: i64 = line.parse().ok()?;
            let Ok(len) = usize::try_from(len) else {
                return Some((Reply::Other("nil".to_owned()), line_end + 2));
            };
            let start = line_end + 2;
            (buf.len() >= start + len + 2).then(|| {
                (
                    Reply::Bulk(buf[start..start + len].to_vec()),
                    start + len + 2,
                )
            })
        }
        _ => Some((Reply::Other(line.to_owned()), line_end + 2)),
    }
}

/// Redis's counters at one moment.
pub(crate) struct Snapshot {
    pub(crate) at: Instant,
    /// `total_commands_processed` (commands run by scripts included).
    pub(crate) total: u64,
    /// `INFO commandstats`: calls by command name, upper case.
    pub(crate) commands: BTreeMap<String, u64>,
    pub(crate) used_memory: u64,
    pub(crate) cpu: Option<f64>,
}

impl Snapshot {
    /// Commands since `before` (the `INFO` that took `before` left out), their seconds and
    /// a breakdown by name, most frequent first.
    pub(crate) fn since(&self, before: &Snapshot) -> (u64, f64, String) {
        let total = self.total.saturating_sub(before.total).saturating_sub(1);
        let mut by_name: Vec<(String, u64)> = self
            .commands
            .iter()
            .map(|(name, calls)| {
                let own = u64::from(name == "INFO");
                let delta = calls
                    .saturating_sub(before.commands.get(name).copied().unwrap_or(0))
                    .saturating_sub(own);
                (name.clone(), delta)
            })
            .filter(|(_, delta)| *delta > 0)
            .collect();
        by_name.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let breakdown = by_name
            .iter()
            .map(|(name, delta)| format!("{name} {delta}"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            total,
            self.at.duration_since(before.at).as_secs_f64(),
            breakdown,
        )
    }

    pub(crate) fn cpu_since(&self, before: &Snapshot) -> f64 {
        match (before.cpu, self.cpu) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Reply, parse_reply};

    #[test]
    fn resp_replies_once_whole() {
        assert!(matches!(
            parse_reply(b":42\r\nrest"),
            Some((Reply::Integer(42), 5))
        ));
        assert!(parse_reply(b"$5\r\nhel").is_none());
        match parse_reply(b"$5\r\nhello\r\n") {
            Some((Reply::Bulk(body), 11)) => assert_eq!(body, b"hello"),
            _ => panic!("a bulk string"),
        }
        assert!(matches!(
            parse_reply(b"-ERR no\r\n"),
            Some((Reply::Other(line), 9)) if line == "ERR no"
        ));
        assert!(matches!(
            parse_reply(b"$-1\r\n"),
            Some((Reply::Other(_), 5))
        ));
    }
}
