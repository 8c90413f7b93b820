//! A minimal synchronous RESP2 client: one TCP connection, commands written as arrays of bulk
//! strings, replies parsed one at a time.
//!
//! Why not the `redis` crate: even without default features it brings `url` (and with it
//! `idna` and a dozen ICU crates), `combine` and more, to build on every machine, while
//! racepool needs a dozen commands. Owning the client also lets the caller see exactly what
//! it needs: a broken connection (the outcome of what was sent is unknown) apart from an
//! error reply (the server refused, nothing changed), a `MULTI … EXEC` sent in one write and
//! answered in one round trip, buffers reused for every command, and read and write timeouts
//! so a stopped server cannot hold a worker forever.
//!
//! A client is opened in the process that uses it, after any fork, and never crosses one.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Where a server is: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrl {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RedisUrl {
    /// Parses a URL; the error says what part is wrong.
    pub fn parse(text: &str) -> Result<RedisUrl, String> {
        let rest = text
            .strip_prefix("redis://")
            .ok_or_else(|| format!("'{text}': expected redis://HOST[:PORT][/DB]"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let (user, password) = match auth.map(|a| a.split_once(':').unwrap_or((a, ""))) {
            None => (None, None),
            Some((u, p)) => (
                Some(u.to_string()).filter(|u| !u.is_empty()),
                Some(p.to_string()).filter(|p| !p.is_empty()),
            ),
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (
                hp,
                db.parse()
                    .map_err(|_| format!("'{text}': database '{db}' is not a number"))?,
            ),
            None => (rest, 0),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            // [::1]:6379
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("'{text}': unclosed '[' in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(format!("'{text}': no host"));
        }
        let port = match port {
            None => 6379,
            Some(p) => p
                .parse()
                .map_err(|_| format!("'{text}': port '{p}' is not a port number"))?,
        };
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            db,
            user,
            password,
        })
    }
}

impl fmt::Display for RedisUrl {
    /// The URL without its password: safe to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "redis://{host}:{}/{}", self.port, self.db)
    }
}

/// One reply, as RESP2 has them. A nil bulk string and a nil array (`EXEC` of a transaction
/// whose watched keys changed) are both `Nil`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
    /// An error reply (`-ERR …`, `-NOSCRIPT …`): the server refused this command.
    Error(String),
}

/// Why an exchange with the server failed.
#[derive(Debug)]
pub enum ClientError {
    /// No connection could be made (refused, unreachable, timed out, bad AUTH or SELECT).
    Connect(String),
    /// The connection broke or timed out mid-exchange: whatever was sent may or may not have
    /// been applied.
    Io(io::Error),
    /// The server sent something that is not RESP or not the reply the command has: the
    /// stream can no longer be trusted, so this too leaves the outcome unknown.
    Protocol(String),
    /// The server answered with an error reply: it refused the command.
    Server(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(m) => write!(f, "cannot connect: {m}"),
            ClientError::Io(e) => write!(f, "connection lost: {e}"),
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::Server(m) => write!(f, "server error: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

/// One argument of a command, written as a RESP bulk string.
pub trait Arg {
    fn put(&self, out: &mut Vec<u8>);
}

fn put_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    put_decimal(out, bytes.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Decimal digits without going through `fmt` (this is on every command's path).
fn put_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl Arg for str {
    fn put(&self, out: &mut Vec<u8>) {
        put_bulk(out, self.as_bytes())
    }
}
impl Arg for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bulk(out, self.as_bytes())
    }
}
impl Arg for [u8] {
    fn put(&self, out: &mut Vec<u8>) {
        put_bulk(out, self)
    }
}
impl Arg for Vec<u8> {
    fn put(&self, out: &mut Vec<u8>) {
        put_bulk(out, self)
    }
}
impl<T: Arg + ?Sized> Arg for &T {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out)
    }
}
macro_rules! unsigned_arg {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn put(&self, out: &mut Vec<u8>) {
                let mut digits = Vec::with_capacity(20);
                put_decimal(&mut digits, *self as u64);
                put_bulk(out, &digits)
            }
        }
    )*};
}
unsigned_arg!(u32, u64, usize);

/// The longest bulk string or array a reply may announce before we call it garbage (Redis'
/// own `proto-max-bulk-len` default is 512 MB).
const MAX_LEN: i64 = 512 << 20;

/// A connection to one server.
pub struct Client {
    stream: BufReader<TcpStream>,
    /// Commands queued and not yet sent.
    out: Vec<u8>,
    /// Reused for each reply line.
    line: Vec<u8>,
}

impl Client {
    /// Connects (each resolved address in turn, within `timeout`), sets read and write
    /// timeouts of `timeout`, authenticates and selects the URL's database.
    pub fn connect(url: &RedisUrl, timeout: Duration) -> Result<Client, ClientError> {
        let addrs = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|e| ClientError::Connect(format!("{}: {e}", url.host)))?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = stream.ok_or_else(|| {
            ClientError::Connect(last.map_or("no address".into(), |e| e.to_string()))
        })?;
        let setup = |s: &TcpStream| -> io::Result<()> {
            // A request is one small write: Nagle's delay would only add latency.
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))
        };
        setup(&stream).map_err(|e| ClientError::Connect(e.to_string()))?;
        let mut client = Client {
            stream: BufReader::with_capacity(16 << 10, stream),
            out: Vec::with_capacity(1024),
            line: Vec::with_capacity(64),
        };
        let refused = |what: &str, e: ClientError| ClientError::Connect(format!("{what}: {e}"));
        match (&url.user, &url.password) {
            (Some(user), Some(pass)) => client
                .call(&[&"AUTH", user, pass])
                .map_err(|e| refused("AUTH", e))?,
            (None, Some(pass)) => client
                .call(&[&"AUTH", pass])
                .map_err(|e| refused("AUTH", e))?,
            _ => Reply::Nil,
        };
        if url.db != 0 {
            client
                .call(&[&"SELECT", &url.db])
                .map_err(|e| refused("SELECT", e))?;
        }
        Ok(client)
    }

    /// Queues one command; nothing is sent until [`Client::send`].
    pub fn queue(&mut self, args: &[&dyn Arg]) {
        self.out.push(b'*');
        put_decimal(&mut self.out, args.len() as u64);
        self.out.extend_from_slice(b"\r\n");
        for a in args {
            a.put(&mut self.out);
        }
    }

    /// Queues one command made of several argument lists (`EVALSHA sha n`, keys, args).
    pub fn queue_parts(&mut self, parts: &[&[&dyn Arg]]) {
        self.out.push(b'*');
        put_decimal(&mut self.out, parts.iter().map(|p| p.len() as u64).sum());
        self.out.extend_from_slice(b"\r\n");
        for a in parts.iter().flat_map(|p| p.iter()) {
            a.put(&mut self.out);
        }
    }

    /// Sends every queued command in one write.
    pub fn send(&mut self) -> Result<(), ClientError> {
        let result = self.stream.get_mut().write_all(&self.out);
        self.out.clear();
        Ok(result?)
    }

    /// Reads the next reply; an error reply is a `Reply::Error`, not an `Err`.
    pub fn reply(&mut self) -> Result<Reply, ClientError> {
        self.read_reply(0)
    }

    /// Sends one command and reads its reply; an error reply becomes `ClientError::Server`.
    pub fn call(&mut self, args: &[&dyn Arg]) -> Result<Reply, ClientError> {
        self.queue(args);
        self.send()?;
        match self.reply()? {
            Reply::Error(e) => Err(ClientError::Server(e)),
            r => Ok(r),
        }
    }

    /// Sends what is queued (`MULTI`, `queued` commands, `EXEC`) and reads every reply.
    /// `None` when EXEC answered nil: a watched key changed and nothing was done. An error
    /// reply while queuing (the transaction was discarded) or inside it is `Server`.
    pub fn exec(&mut self, queued: usize) -> Result<Option<Vec<Reply>>, ClientError> {
        self.send()?;
        let mut refused = None;
        // MULTI's +OK, then +QUEUED for each command.
        for _ in 0..=queued {
            if let Reply::Error(e) = self.reply()? {
                refused.get_or_insert(e);
            }
        }
        let exec = self.reply()?;
        if let Some(e) = refused {
            return Err(ClientError::Server(e));
        }
        match exec {
            Reply::Nil => Ok(None),
            Reply::Array(items) => match items.iter().find_map(|r| match r {
                Reply::Error(e) => Some(e.clone()),
                _ => None,
            }) {
                Some(e) => Err(ClientError::Server(e)),
                None => Ok(Some(items)),
            },
            other => Err(other.unexpected("EXEC's array")),
        }
    }

    /// Walks every key matching `pattern` by SCAN (never KEYS: a big server answers others
    /// between our pages), handing each page to `page` with the connection.
    pub fn scan(
        &mut self,
        pattern: &str,
        mut page: impl FnMut(&mut Client, Vec<Vec<u8>>) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let mut cursor = b"0".to_vec();
        loop {
            let reply = self.call(&[&"SCAN", &cursor, &"MATCH", &pattern, &"COUNT", &1000u32])?;
            let mut parts = reply.array()?.into_iter();
            let (Some(Reply::Bulk(next)), Some(Reply::Array(found))) = (parts.next(), parts.next())
            else {
                return Err(ClientError::Protocol("SCAN answered something else".into()));
            };
            let keys = found
                .into_iter()
                .filter_map(|k| match k {
                    Reply::Bulk(k) => Some(k),
                    _ => None,
                })
                .collect();
            page(self, keys)?;
            if next == b"0" {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn read_line(&mut self) -> Result<(), ClientError> {
        self.line.clear();
        let n = self.stream.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-reply",
            )));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(())
    }

    fn line_text(&self) -> String {
        String::from_utf8_lossy(&self.line[1..]).into_owned()
    }

    fn line_int(&self) -> Result<i64, ClientError> {
        std::str::from_utf8(&self.line[1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClientError::Protocol(format!("bad number '{}'", self.line_text())))
    }

    fn read_reply(&mut self, depth: u32) -> Result<Reply, ClientError> {
        if depth > 8 {
            return Err(ClientError::Protocol("replies nested too deep".into()));
        }
        self.read_line()?;
        let Some(&kind) = self.line.first() else {
            return Err(ClientError::Protocol("empty reply line".into()));
        };
        match kind {
            b'+' => Ok(Reply::Status(self.line_text())),
            b'-' => Ok(Reply::Error(self.line_text())),
            b':' => Ok(Reply::Int(self.line_int()?)),
            b'$' => match self.line_int()? {
                -1 => Ok(Reply::Nil),
                n if (0..=MAX_LEN).contains(&n) => {
                    let mut data = vec![0u8; n as usize + 2];
                    self.stream.read_exact(&mut data)?;
                    if !data.ends_with(b"\r\n") {
                        return Err(ClientError::Protocol(
                            "bulk string not ended by CRLF".into(),
                        ));
                    }
                    data.truncate(n as usize);
                    Ok(Reply::Bulk(data))
                }
                n => Err(ClientError::Protocol(format!("bulk length {n}"))),
            },
            b'*' => match self.line_int()? {
                -1 => Ok(Reply::Nil),
                n if (0..=MAX_LEN).contains(&n) => {
                    let mut items = Vec::with_capacity((n as usize).min(1024));
                    for _ in 0..n {
                        items.push(self.read_reply(depth + 1)?);
                    }
                    Ok(Reply::Array(items))
                }
                n => Err(ClientError::Protocol(format!("array length {n}"))),
            },
            other => Err(ClientError::Protocol(format!(
                "unknown reply type {:?}",
                other as char
            ))),
        }
    }
}

impl Reply {
    fn unexpected(&self, wanted: &str) -> ClientError {
        match self {
            Reply::Error(e) => ClientError::Server(e.clone()),
            other => ClientError::Protocol(format!("expected {wanted}, got {other:?}")),
        }
    }

    pub fn int(&self) -> Result<i64, ClientError> {
        match self {
            Reply::Int(n) => Ok(*n),
            other => Err(other.unexpected("an integer")),
        }
    }

    /// A bulk string holding a decimal number (what GET returns for a counter); `None` when
    /// the key does not exist.
    pub fn number(&self) -> Result<Option<u64>, ClientError> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(b) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(|| {
                    ClientError::Protocol(format!(
                        "'{}' is not a number",
                        String::from_utf8_lossy(b)
                    ))
                }),
            Reply::Int(n) if *n >= 0 => Ok(Some(*n as u64)),
            other => Err(other.unexpected("a number")),
        }
    }

    pub fn bulk(&self) -> Result<Option<&[u8]>, ClientError> {
        match self {
            Reply::Nil => Ok(None),
            Reply::Bulk(b) => Ok(Some(b)),
            other => Err(other.unexpected("a bulk string")),
        }
    }

    pub fn array(self) -> Result<Vec<Reply>, ClientError> {
        match self {
            Reply::Array(items) => Ok(items),
            other => Err(other.unexpected("an array")),
        }
    }

    /// `+OK` (or `+QUEUED` inside a transaction): anything else is an error.
    pub fn status(&self) -> Result<(), ClientError> {
        match self {
            Reply::Status(_) => Ok(()),
            other => Err(other.unexpected("a status")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_say_what_is_wrong() {
        let u = RedisUrl::parse("redis://127.0.0.1").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("127.0.0.1", 6379, 0));
        let u = RedisUrl::parse("redis://:secret@cache.local:6380/3").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.db), ("cache.local", 6380, 3));
        assert_eq!((u.user, u.password.as_deref()), (None, Some("secret")));
        let u = RedisUrl::parse("redis://bob:pw@[::1]:7000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user.as_deref()),
            ("::1", 7000, Some("bob"))
        );
        assert_eq!(u.to_string(), "redis://[::1]:7000/0");
        assert!(RedisUrl::parse("redis://h:x/0")
            .unwrap_err()
            .contains("port 'x'"));
        assert!(RedisUrl::parse("redis://h/zero")
            .unwrap_err()
            .contains("database"));
        assert!(RedisUrl::parse("redis:///0")
            .unwrap_err()
            .contains("no host"));
        assert!(RedisUrl::parse("http://h").is_err());
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        put_decimal(&mut out, 0);
        put_decimal(&mut out, 18_446_744_073_709_551_615);
        assert_eq!(out, b"018446744073709551615");
        let mut out = Vec::new();
        "GET".put(&mut out);
        7u32.put(&mut out);
        assert_eq!(out, b"$3\r\nGET\r\n$1\r\n7\r\n");
    }

    #[test]
    fn reply_accessors_refuse_the_wrong_kind() {
        assert_eq!(Reply::Bulk(b"41".to_vec()).number().unwrap(), Some(41));
        assert_eq!(Reply::Nil.number().unwrap(), None);
        assert!(matches!(
            Reply::Bulk(b"x".to_vec()).number(),
            Err(ClientError::Protocol(_))
        ));
        assert!(matches!(
            Reply::Error("ERR no".into()).int(),
            Err(ClientError::Server(m)) if m == "ERR no"
        ));
    }
}
