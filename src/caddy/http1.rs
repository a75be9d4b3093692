//! A minimal HTTP/1.1 client for Caddy's admin API on a unix socket (ureq has
//! no unix-socket transport). One request per connection (`Connection:
//! close`); the request body has a Content-Length; the response body may be
//! chunked (Caddy 2.6 sends `GET /config/` chunked with an `ETag` trailer),
//! Content-Length framed, or delimited by the connection closing.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 256 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `ETag` header, when the answer has one (Caddy 2.7+; 2.6 sends it
    /// as a trailer, which is dropped).
    pub etag: Option<String>,
}

/// Sends one request over the unix socket at `socket`, within `timeout`.
pub(crate) fn unix_request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> io::Result<Response> {
    let deadline = Instant::now() + timeout;
    let stream = UnixStream::connect(socket)?;
    let stream = Deadline { stream, deadline };
    exchange(stream, method, path, headers, body)
}

/// A unix stream whose every read and write gives up at `deadline`.
struct Deadline {
    stream: UnixStream,
    deadline: Instant,
}

impl Deadline {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
        } else {
            Ok(left)
        }
    }
}

impl Read for Deadline {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf).map_err(timeout_kind)
    }
}

impl Write for Deadline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf).map_err(timeout_kind)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

fn timeout_kind(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(io::ErrorKind::TimedOut, "timed out")
    } else {
        e
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Writes the request and reads the whole response from any byte stream.
pub(crate) fn exchange<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> io::Result<Response> {
    // An empty Host, as RFC 9112 asks when the target has no host name. Caddy
    // 2.6 allows exactly the origin "" on a unix-socket admin endpoint and
    // answers `403 host not allowed: localhost` to anything else.
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost:\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut out = req.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()?;

    let mut r = BufReader::new(stream);
    loop {
        let head = read_head(&mut r)?;
        // 1xx (100 Continue, 103 Early Hints) are followed by the real response
        if (100..200).contains(&head.status) {
            continue;
        }
        let no_body = method == "HEAD" || head.status == 204 || head.status == 304;
        let body = if no_body {
            Vec::new()
        } else if head.chunked {
            read_chunked(&mut r)?
        } else if let Some(n) = head.content_length {
            if n > MAX_BODY {
                return Err(bad(format!("response body too large ({n} bytes)")));
            }
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            b
        } else {
            let mut b = Vec::new();
            r.take(MAX_BODY as u64 + 1).read_to_end(&mut b)?;
            if b.len() > MAX_BODY {
                return Err(bad("response body too large"));
            }
            b
        };
        return Ok(Response {
            status: head.status,
            body,
            etag: head.etag,
        });
    }
}

struct Head {
    status: u16,
    chunked: bool,
    content_length: Option<usize>,
    etag: Option<String>,
}

/// Reads one CRLF (or LF) terminated line, without the terminator.
fn read_line<R: BufRead>(r: &mut R, budget: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the response was complete",
        ));
    }
    if n > *budget {
        return Err(bad("response header section too large"));
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a line",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| bad("response header is not UTF-8"))
}

fn read_head<R: BufRead>(r: &mut R) -> io::Result<Head> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(r, &mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse::<u16>().ok());
    let Some(status) = status.filter(|_| version.starts_with("HTTP/1.")) else {
        return Err(bad(format!("not an HTTP/1.x response: {status_line:?}")));
    };
    let mut head = Head {
        status,
        chunked: false,
        content_length: None,
        etag: None,
    };
    loop {
        let line = read_line(r, &mut budget)?;
        if line.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad(format!("malformed header line {line:?}")));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| bad(format!("bad Content-Length {value:?}")))?;
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("etag") {
            head.etag = Some(value.to_owned());
        }
    }
}

/// Decodes a chunked body; trailer fields (Caddy's `ETag`) are read and dropped.
fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let line = read_line(r, &mut budget)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| bad(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            let mut budget = MAX_HEAD;
            while !read_line(r, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(bad("response body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut budget = 2;
        if !read_line(r, &mut budget)?.is_empty() {
            return Err(bad("chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that records what is written and replays a canned answer.
    struct Fake {
        input: io::Cursor<Vec<u8>>,
        written: Vec<u8>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // one byte at a time: exercises every boundary
            let n = buf.len().min(1);
            self.input.read(&mut buf[..n])
        }
    }
    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(answer: &str, method: &str, body: Option<&[u8]>) -> (io::Result<Response>, String) {
        let mut fake = Fake {
            input: io::Cursor::new(answer.as_bytes().to_vec()),
            written: Vec::new(),
        };
        let r = exchange(
            &mut fake,
            method,
            "/config/",
            &[("If-Match", "\"/config/ 0e7c22ea\"")],
            body,
        );
        (r, String::from_utf8(fake.written).unwrap())
    }

    #[test]
    fn chunked_with_trailer() {
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTrailer: ETag\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n3;ext=1\r\n1}\n\r\n0\r\nEtag: \"/config/ 48eaae82\"\r\n\r\n";
        let (r, sent) = run(answer, "GET", None);
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{\"a\":1}\n");
        assert_eq!(
            sent,
            "GET /config/ HTTP/1.1\r\nHost:\r\nConnection: close\r\nAccept: application/json\r\nIf-Match: \"/config/ 0e7c22ea\"\r\n\r\n"
        );
    }

    #[test]
    fn content_length_and_post_body() {
        let answer = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"error\":1}";
        let (r, sent) = run(answer, "POST", Some(b"{}"));
        let r = r.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (500, &b"{\"error\":1}"[..]));
        assert!(sent.ends_with("Content-Length: 2\r\n\r\n{}"), "{sent}");
    }

    #[test]
    fn until_close_and_truncation() {
        let (r, _) = run("HTTP/1.1 200 OK\n\nhello", "GET", None);
        assert_eq!(r.unwrap().body, b"hello");
        let (r, _) = run(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "GET",
            None,
        );
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let (r, _) = run(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "GET",
            None,
        );
        assert!(r.is_err());
        let (r, _) = run("SSH-2.0-OpenSSH\r\n", "GET", None);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (r, _) = run("", "GET", None);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
