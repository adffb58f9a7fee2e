//! A small static file server for the web demo: 127.0.0.1 only, GET and HEAD, the right MIME types
//! (`application/wasm` matters: browsers refuse to stream-compile wasm without it), and no path
//! ever resolves outside the served folder.
//!
//! One thread accepts connections and gathers their request heads with `poll(2)`, so a waiting
//! client costs a socket and a buffer, never a thread; a client must finish its head within
//! [`ServeOptions::header_timeout`] of being accepted and may not go quiet for longer than
//! [`ServeOptions::idle_timeout`], or it is closed. Complete requests go to a fixed pool of
//! [`ServeOptions::threads`] workers that write the responses (each write also bounded by the
//! idle timeout).

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections gathering their heads at most; beyond this the server stops accepting for a
/// while and the kernel's listen backlog holds the rest.
const MAX_WAITING: usize = 4096;
/// Bytes of request head read at most (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long accepting pauses after it failed (out of file descriptors, say).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How the server treats connections.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// Worker threads: responses written at once.
    pub threads: usize,
    /// Time from accepting a connection to the end of its request headers.
    pub header_timeout: Duration,
    /// Longest wait for the client to send or take bytes.
    pub idle_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { threads: 8, header_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(10) }
    }
}

/// The Content-Type of a file, from its extension.
pub fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt" | "md" | "ts" | "tsv") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` on a malformed escape or a decoded NUL.
fn percent_decode(s: &str) -> Option<String> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.contains('\0'))
}

/// The file a request path names under `root` (a directory means its `index.html`), or `None` when
/// the path is malformed, leaves `root` (`..`, absolute parts, symlinks out) or names no file.
pub fn resolve(root: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next()?;
    let decoded = percent_decode(path)?;
    let mut rel = PathBuf::new();
    for part in decoded.split('/').filter(|p| !p.is_empty()) {
        if part.contains('\\') {
            return None;
        }
        match Path::new(part).components().next()? {
            Component::Normal(p) if Path::new(part).components().count() == 1 => rel.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let root = root.canonicalize().ok()?;
    let mut full = root.join(rel).canonicalize().ok()?;
    if full.is_dir() {
        full = full.join("index.html").canonicalize().ok()?;
    }
    (full.starts_with(&root) && full.is_file()).then_some(full)
}

fn respond(stream: &mut TcpStream, status: &str, mime: &str, len: u64) -> io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )
}

/// Answers the request whose head is `head` on `stream`.
fn handle(mut stream: TcpStream, head: &[u8], root: &Path) -> io::Result<()> {
    let request = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default());
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        let body = b"only GET and HEAD\n";
        respond(&mut stream, "405 Method Not Allowed", "text/plain", body.len() as u64)?;
        return stream.write_all(body);
    }
    match resolve(root, target).and_then(|p| std::fs::File::open(&p).ok().map(|f| (p, f))) {
        Some((path, mut file)) => {
            let len = file.metadata()?.len();
            respond(&mut stream, "200 OK", mime(&path), len)?;
            if method == "GET" {
                io::copy(&mut file, &mut stream)?;
            }
            Ok(())
        }
        None => {
            let body = b"not found\n";
            respond(&mut stream, "404 Not Found", "text/plain", body.len() as u64)?;
            if method == "GET" {
                stream.write_all(body)?;
            }
            Ok(())
        }
    }
}

/// A connection whose request head is still arriving.
struct Waiting {
    stream: TcpStream,
    head: Vec<u8>,
    /// When the head must be complete.
    deadline: Instant,
    /// When it last sent something (or was accepted).
    active: Instant,
}

impl Waiting {
    /// When this connection is closed unless its head completes first.
    fn expires(&self, idle: Duration) -> Instant {
        self.deadline.min(self.active + idle)
    }

    /// Reads what has arrived. `Ok(true)`: the head is complete (or as long as it may be).
    /// `Err`: the client closed or failed, and the connection is dropped.
    fn read(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.active = Instant::now();
                    let take = n.min(MAX_HEAD - self.head.len());
                    self.head.extend_from_slice(&buf[..take]);
                    let end =
                        self.head.windows(4).any(|w| w == b"\r\n\r\n") || self.head.windows(2).any(|w| w == b"\n\n");
                    if end || self.head.len() == MAX_HEAD {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A worker: writes responses to complete requests until the queue closes.
fn work(queue: &Mutex<Receiver<(TcpStream, Vec<u8>)>>, root: &Path) {
    loop {
        // The lock is held only while waiting for the next request.
        let Ok(Ok((stream, head))) = queue.lock().map(|q| q.recv()) else {
            return;
        };
        let _ = handle(stream, &head, root);
    }
}

/// A validated server: a folder to serve and how.
pub struct Server {
    root: Arc<PathBuf>,
    opts: ServeOptions,
}

impl Server {
    /// Fails when `root` is not a folder, or `opts` has no threads or a zero timeout.
    pub fn new(root: &Path, opts: ServeOptions) -> io::Result<Server> {
        let root = root
            .canonicalize()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot serve {}: {e}", root.display())))?;
        if !root.is_dir() {
            let msg = format!("{} is not a folder: serve the folder that holds index.html", root.display());
            return Err(io::Error::new(ErrorKind::InvalidInput, msg));
        }
        if opts.threads == 0 || opts.header_timeout.is_zero() || opts.idle_timeout.is_zero() {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                "the server needs at least one thread and non-zero timeouts",
            ));
        }
        Ok(Server { root: Arc::new(root), opts })
    }

    /// The folder served, canonical.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Serves on `listener` until the process ends.
    pub fn run(self, listener: TcpListener) -> io::Result<()> {
        let (sender, receiver) = sync_channel::<(TcpStream, Vec<u8>)>(MAX_WAITING);
        let queue = Arc::new(Mutex::new(receiver));
        for i in 0..self.opts.threads {
            let (queue, root) = (queue.clone(), self.root.clone());
            std::thread::Builder::new().name(format!("pocketrec-serve-{i}")).spawn(move || work(&queue, &root))?;
        }
        listener.set_nonblocking(true)?;
        let idle = self.opts.idle_timeout;
        let mut waiting: Vec<Waiting> = Vec::new();
        let mut accept_paused_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            waiting.retain(|w| w.expires(idle) > now);
            accept_paused_until = accept_paused_until.filter(|&t| t > now);
            let accepting = accept_paused_until.is_none() && waiting.len() < MAX_WAITING;
            // Sleep until a socket is ready or the next connection (or the pause) expires.
            let wake = waiting.iter().map(|w| w.expires(idle)).chain(accept_paused_until).min();
            let timeout = wake.map(|t| {
                Timespec::try_from(t.saturating_duration_since(now)).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 })
            });
            let ready: Vec<bool> = {
                let listen_flags = if accepting { PollFlags::IN } else { PollFlags::empty() };
                let mut fds: Vec<PollFd> = std::iter::once(PollFd::new(&listener, listen_flags))
                    .chain(waiting.iter().map(|w| PollFd::new(&w.stream, PollFlags::IN)))
                    .collect();
                match poll(&mut fds, timeout.as_ref()) {
                    Ok(_) => fds.iter().map(|fd| !fd.revents().is_empty()).collect(),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            // Complete heads go to the workers; closed or failed connections are dropped. Walking
            // backwards, `swap_remove` only moves entries already walked.
            for i in (0..waiting.len()).rev() {
                if !ready[i + 1] {
                    continue;
                }
                match waiting[i].read() {
                    Ok(false) => {}
                    Ok(true) => {
                        let Waiting { stream, head, .. } = waiting.swap_remove(i);
                        if stream.set_nonblocking(false).and_then(|()| stream.set_write_timeout(Some(idle))).is_ok()
                            && sender.send((stream, head)).is_err()
                        {
                            return Err(io::Error::other("every server thread has stopped"));
                        }
                    }
                    Err(_) => drop(waiting.swap_remove(i)),
                }
            }
            if accepting && ready[0] {
                accept_paused_until = accept(&listener, &mut waiting, self.opts.header_timeout);
            }
        }
    }
}

/// Accepts every pending connection into `waiting` (up to [`MAX_WAITING`]). Returns when to
/// accept again if accepting failed (out of file descriptors, say): the waiting connections
/// finish or expire first.
fn accept(listener: &TcpListener, waiting: &mut Vec<Waiting>, header_timeout: Duration) -> Option<Instant> {
    while waiting.len() < MAX_WAITING {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_ok() {
                    let now = Instant::now();
                    waiting.push(Waiting { stream, head: Vec::new(), deadline: now + header_timeout, active: now });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::ConnectionAborted) => {}
            Err(_) => return Some(Instant::now() + ACCEPT_PAUSE),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types() {
        assert_eq!(mime(Path::new("m.safetensors")), "application/octet-stream");
        assert_eq!(mime(Path::new("a.JS")), "text/javascript; charset=utf-8");
        assert_eq!(mime(Path::new("c.json")), "application/json");
        assert_eq!(mime(Path::new("s.css")), "text/css; charset=utf-8");
    }
}
