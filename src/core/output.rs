//! What the pusher sees of a command's output (pure): `\r` progress updates
//! collapse into their final state, ANSI escapes go, docker's notices go,
//! and every line is indented under the current `----->` step.

/// Indentation of output under a step (as Heroku's).
pub const INDENT: &str = "       ";

/// Notices docker prints on every call that say nothing about the app.
/// Each starts a block: its indented continuation lines go with it.
const NOTICES: &[&str] = &[
    "DEPRECATED: The legacy builder is deprecated",
    "DEPRECATED: BuildKit is currently disabled",
];

/// Turns a raw byte stream into display lines, fed in chunks as they come.
#[derive(Debug, Default)]
pub struct Filter {
    partial: Vec<u8>,
    in_notice: bool,
}

impl Filter {
    /// The display lines completed by `chunk` (already indented).
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = vec![];
        for &b in chunk {
            if b == b'\n' {
                let raw = std::mem::take(&mut self.partial);
                out.extend(self.line(&raw));
            } else {
                self.partial.push(b);
            }
        }
        out
    }

    /// The last line when the stream ended without a newline.
    pub fn finish(&mut self) -> Option<String> {
        let raw = std::mem::take(&mut self.partial);
        self.line(&raw)
    }

    fn line(&mut self, raw: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(raw);
        let text = strip_ansi(&text);
        let text = last_update(&text).trim_end();
        if self.in_notice {
            if text.is_empty() || text.starts_with(char::is_whitespace) {
                return None;
            }
            self.in_notice = false;
        }
        if NOTICES.iter().any(|n| text.starts_with(n)) {
            self.in_notice = true;
            return None;
        }
        if text.trim().is_empty() {
            return None;
        }
        // A build script's own step lines stay steps.
        if text.starts_with("-----> ") {
            return Some(text.to_owned());
        }
        Some(format!("{INDENT}{text}"))
    }
}

/// What a terminal would show of a line redrawn with `\r`: its last
/// non-empty version (a trailing `\r`, as in CRLF, redraws nothing).
fn last_update(line: &str) -> &str {
    line.rsplit('\r')
        .find(|s| !s.trim().is_empty())
        .unwrap_or("")
}

/// Removes ANSI escape sequences (colours, cursor moves, OSC titles) and
/// control characters other than tab and `\r`.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            if !c.is_control() || c == '\t' || c == '\r' {
                out.push(c);
            }
            continue;
        }
        match chars.next() {
            // CSI: parameters, then one final byte in @..~
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        chars.next_if_eq(&'\\');
                        break;
                    }
                }
            }
            // two-character escapes (ESC 7, ESC M, ...)
            _ => {}
        }
    }
    out
}

/// Filters a whole recorded stream (what [`Filter`] gives chunk by chunk).
pub fn filter_all(raw: &[u8]) -> Vec<String> {
    let mut f = Filter::default();
    let mut lines = f.feed(raw);
    lines.extend(f.finish());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carriage_return_progress_collapses_to_its_final_state() {
        let raw = b"Reading package lists... 0%\rReading package lists... 50%\rReading package lists... Done\r\n";
        assert_eq!(filter_all(raw), ["       Reading package lists... Done"]);
        assert_eq!(filter_all(b"a\r\r\n"), ["       a"]);
    }

    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            strip_ansi("\x1b[1A\x1b[2K\x1b[32mCreated\x1b[0m \x1b]0;title\x07x\x1b7"),
            "Created x"
        );
    }

    #[test]
    fn chunks_split_anywhere_give_the_same_lines() {
        let raw = b"Step 1/3 : FROM x\n ---> abc\r ---> def\nlast";
        let whole = filter_all(raw);
        for cut in 0..raw.len() {
            let mut f = Filter::default();
            let mut got = f.feed(&raw[..cut]);
            got.extend(f.feed(&raw[cut..]));
            got.extend(f.finish());
            assert_eq!(got, whole, "cut at {cut}");
        }
        assert_eq!(whole.last().unwrap(), "       last");
    }

    #[test]
    fn docker_notices_go_steps_stay() {
        let raw = b"DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n            Install the buildx component to build images with BuildKit:\n            https://docs.docker.com/go/buildx/\n\nSending build context to Docker daemon  2.048kB\n-----> Installing requirements.txt\n";
        assert_eq!(
            filter_all(raw),
            [
                "       Sending build context to Docker daemon  2.048kB",
                "-----> Installing requirements.txt"
            ]
        );
    }

    #[test]
    fn recorded_build_stream_snapshot() {
        // docker build (legacy builder) + apt + pip + compose v2, as recorded
        let raw = concat!(
            "DEPRECATED: The legacy builder is deprecated and will be removed in a future release.\n",
            "            Install the buildx component to build images with BuildKit:\n",
            "            https://docs.docker.com/go/buildx/\n",
            "\n",
            "Sending build context to Docker daemon  1.024kB\rSending build context to Docker daemon  4.096kB\r\r\n",
            "Step 1/6 : ARG BASE=debian:bookworm-slim\n",
            "Step 2/6 : FROM ${BASE}\n",
            " ---> 5f3c0e2a1b9d\n",
            "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\n",
            "\r0% [Working]\r            \r\x1b[33m20% [1 InRelease 14.2 kB/151 kB 9%]\x1b[0m\r100% [Done]\n",
            "Collecting flask\n",
            "  Downloading flask-3.0.0-py3-none-any.whl (99 kB)\n",
            "\x1b[?25l     \x1b[90m━━━━\x1b[0m 0.0/99.7 kB\r\x1b[2K     \x1b[90m━━━━━━━━━━\x1b[0m 99.7/99.7 kB 2.1 MB/s eta 0:00:00\n",
            "\x1b[?25h",
            " Container demo-web-1  Creating\n",
            " Container demo-web-1  Created\n",
            " Container demo-web-1  Starting\r\n",
            " Container demo-web-1  Started\r\n",
        );
        insta::assert_snapshot!(filter_all(raw.as_bytes()).join("\n"));
    }
}
