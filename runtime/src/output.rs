//! Capture of an activation's stdout and stderr.
//!
//! [`Capture`] is shared (behind a mutex) by the two [`CaptureStream`]s handed to WASI as the
//! guest's stdout and stderr. It splits output into lines as it arrives and keeps:
//! - the log lines, in arrival order, each stamped with its arrival time, until their bytes
//!   reach the action's `logs` limit; later lines are dropped and one truncation marker line
//!   ends the logs;
//! - always the last complete, non-blank stdout line (the result), even after the logs
//!   overflowed, so a chatty action still returns its result.
//!
//! Unlike `MemoryOutputPipe::new(cap)`, writes never fail: the guest sees every write succeed.
//! Memory per activation is bounded by the log limit plus two partial-line buffers of at most
//! [`MAX_LINE_BYTES`] each.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::SystemTime;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wisp_core::activation::{Stream, log_line};

/// Longest single line kept; longer lines are cut (a result that long is refused anyway).
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// What the guest wrote, split into a result line and logs. See the module docs.
#[derive(Debug)]
pub struct Capture {
    limit: usize,
    used: usize,
    /// Set once a line did not fit: nothing more is stored.
    full: bool,
    /// Lines dropped because the logs were full.
    dropped: usize,
    logs: Vec<Entry>,
    last: Option<LastLine>,
    partial: [Partial; 2],
}

#[derive(Debug)]
struct Entry {
    at: SystemTime,
    stream: Stream,
    text: String,
}

#[derive(Debug)]
struct LastLine {
    place: Place,
    /// Length of the line as written, including bytes cut beyond [`MAX_LINE_BYTES`].
    len: usize,
}

#[derive(Debug)]
enum Place {
    /// `logs[i]` is the line.
    InLogs(usize),
    /// The logs were full; the line is kept only here.
    Detached(String),
}

#[derive(Debug, Default)]
struct Partial {
    buf: Vec<u8>,
    /// Bytes of the current line beyond [`MAX_LINE_BYTES`] that were not kept.
    cut: usize,
}

/// The captured output once the guest is done.
#[derive(Debug, Default)]
pub struct Output {
    /// The last non-blank stdout line, if any.
    pub result_line: Option<String>,
    /// The full length of that line as written (may exceed `result_line.len()` when cut).
    pub result_len: usize,
    /// Formatted log lines (`ISO-timestamp stdout|stderr: text`), with the truncation marker
    /// last when lines were dropped.
    pub logs: Vec<String>,
    /// Whether lines were dropped.
    pub truncated: bool,
}

/// The marker line OpenWhisk appends when logs exceed the limit.
pub fn truncation_marker(limit: usize) -> String {
    format!("Logs were truncated because the total bytes size exceeds the limit of {limit} bytes.")
}

fn idx(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

impl Capture {
    /// A capture keeping at most `limit` bytes of log lines.
    pub fn new(limit: usize) -> Self {
        Capture {
            limit,
            used: 0,
            full: false,
            dropped: 0,
            logs: Vec::new(),
            last: None,
            partial: [Partial::default(), Partial::default()],
        }
    }

    /// Appends raw bytes written by the guest to `stream`.
    pub fn write(&mut self, stream: Stream, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.append_partial(stream, &bytes[..nl]);
            self.end_line(stream);
            bytes = &bytes[nl + 1..];
        }
        self.append_partial(stream, bytes);
    }

    fn append_partial(&mut self, stream: Stream, bytes: &[u8]) {
        let p = &mut self.partial[idx(stream)];
        let room = MAX_LINE_BYTES.saturating_sub(p.buf.len());
        let keep = bytes.len().min(room);
        p.buf.extend_from_slice(&bytes[..keep]);
        p.cut += bytes.len() - keep;
    }

    fn end_line(&mut self, stream: Stream) {
        let p = &mut self.partial[idx(stream)];
        let len = p.buf.len() + p.cut;
        p.cut = 0;
        let mut raw = std::mem::take(&mut p.buf);
        if raw.last() == Some(&b'\r') {
            raw.pop();
        }
        let text = match String::from_utf8(raw) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        let is_result_candidate = stream == Stream::Stdout && !text.trim().is_empty();
        let cost = text.len() + 1;
        if !self.full && self.used + cost <= self.limit {
            self.used += cost;
            self.logs.push(Entry {
                at: SystemTime::now(),
                stream,
                text,
            });
            if is_result_candidate {
                self.last = Some(LastLine {
                    place: Place::InLogs(self.logs.len() - 1),
                    len,
                });
            }
        } else {
            self.full = true;
            self.dropped += 1;
            if is_result_candidate {
                self.last = Some(LastLine {
                    place: Place::Detached(text),
                    len,
                });
            }
        }
    }

    /// Ends both streams (a partial last line counts as a line) and splits off the result.
    pub fn finish(mut self) -> Output {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let p = &self.partial[idx(stream)];
            if !p.buf.is_empty() || p.cut > 0 {
                self.end_line(stream);
            }
        }
        let mut dropped = self.dropped;
        let (result_line, result_len) = match self.last.take() {
            Some(LastLine {
                place: Place::InLogs(i),
                len,
            }) => {
                let entry = self.logs.remove(i);
                (Some(entry.text), len)
            }
            Some(LastLine {
                place: Place::Detached(text),
                len,
            }) => {
                // The result itself is not a dropped log line.
                dropped -= 1;
                (Some(text), len)
            }
            None => (None, 0),
        };
        let mut logs: Vec<String> = self
            .logs
            .iter()
            .map(|e| log_line(e.at, e.stream, &e.text))
            .collect();
        let truncated = dropped > 0;
        if truncated {
            logs.push(log_line(
                SystemTime::now(),
                Stream::Stderr,
                &truncation_marker(self.limit),
            ));
        }
        Output {
            result_line,
            result_len,
            logs,
            truncated,
        }
    }
}

/// A shareable handle on a [`Capture`]; build one per activation.
#[derive(Clone, Debug)]
pub struct SharedCapture(Arc<Mutex<Capture>>);

impl SharedCapture {
    pub fn new(limit: usize) -> Self {
        SharedCapture(Arc::new(Mutex::new(Capture::new(limit))))
    }

    fn lock(&self) -> MutexGuard<'_, Capture> {
        // A poisoned lock only means a writer panicked mid-write; the data is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream to give WASI as the guest's stdout or stderr.
    pub fn stream(&self, stream: Stream) -> CaptureStream {
        CaptureStream {
            capture: self.clone(),
            stream,
        }
    }

    /// Takes what was captured, leaving an empty capture behind (streams still held by a
    /// dropped guest write into that one).
    pub fn take(&self) -> Output {
        let mut guard = self.lock();
        let limit = guard.limit;
        std::mem::replace(&mut *guard, Capture::new(limit)).finish()
    }
}

/// One of the guest's output streams, writing into a [`SharedCapture`].
#[derive(Clone, Debug)]
pub struct CaptureStream {
    capture: SharedCapture,
    stream: Stream,
}

/// Largest write permit handed to the guest (WASI p1 writes in chunks of 4 KiB anyway).
const PERMIT: usize = 1 << 20;

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.capture.lock().write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(PERMIT)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.capture.lock().write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(out: &Output) -> Vec<String> {
        // Strip the timestamp: "<ts> stream: text".
        out.logs
            .iter()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn last_stdout_line_is_the_result_and_order_is_kept() {
        let mut c = Capture::new(1 << 20);
        c.write(Stream::Stdout, b"first\n");
        c.write(Stream::Stderr, b"warn");
        c.write(Stream::Stderr, b"ing\n");
        c.write(Stream::Stdout, b"{\"ok\":true}\n\n");
        let out = c.finish();
        assert_eq!(out.result_line.as_deref(), Some("{\"ok\":true}"));
        assert_eq!(
            texts(&out),
            vec!["stdout: first", "stderr: warning", "stdout: "]
        );
        assert!(!out.truncated);
    }

    #[test]
    fn unterminated_last_line_counts() {
        let mut c = Capture::new(1 << 20);
        c.write(Stream::Stdout, b"log\r\n{\"a\":1}");
        let out = c.finish();
        assert_eq!(out.result_line.as_deref(), Some("{\"a\":1}"));
        assert_eq!(texts(&out), vec!["stdout: log"]);
    }

    #[test]
    fn overflow_truncates_logs_but_keeps_the_result() {
        let mut c = Capture::new(100);
        for i in 0..50 {
            c.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        c.write(Stream::Stdout, b"{\"done\":true}\n");
        let out = c.finish();
        assert_eq!(out.result_line.as_deref(), Some("{\"done\":true}"));
        assert!(out.truncated);
        let t = texts(&out);
        assert_eq!(
            t.last().unwrap(),
            &format!("stderr: {}", truncation_marker(100))
        );
        let kept: usize = t[..t.len() - 1]
            .iter()
            .map(|l| l.len() - "stdout: ".len() + 1)
            .sum();
        assert!(kept <= 100, "kept {kept} bytes");
        assert_eq!(t[0], "stdout: line 0");
    }

    #[test]
    fn a_result_that_does_not_fit_is_not_a_truncation() {
        let mut c = Capture::new(0);
        c.write(Stream::Stdout, b"{\"greeting\":\"hi\"}\n");
        let out = c.finish();
        assert_eq!(out.result_line.as_deref(), Some("{\"greeting\":\"hi\"}"));
        assert!(out.logs.is_empty());
        assert!(!out.truncated);
    }

    #[test]
    fn huge_lines_are_cut_but_their_length_is_known() {
        let mut c = Capture::new(10 << 20);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..6 {
            c.write(Stream::Stdout, &chunk);
        }
        let out = c.finish();
        assert_eq!(out.result_len, 6 << 20);
        assert_eq!(out.result_line.unwrap().len(), MAX_LINE_BYTES);
    }

    #[test]
    fn blank_output_has_no_result() {
        let mut c = Capture::new(1 << 20);
        c.write(Stream::Stdout, b"  \n");
        c.write(Stream::Stderr, b"oops\n");
        let out = c.finish();
        assert_eq!(out.result_line, None);
        assert_eq!(texts(&out), vec!["stdout:   ", "stderr: oops"]);
    }
}
