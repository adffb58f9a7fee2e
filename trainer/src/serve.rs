//! A small static file server for the web demo: 127.0.0.1 only, GET and HEAD, the right MIME types
//! (`application/wasm` matters: browsers refuse to stream-compile wasm without it), and no path
//! ever resolves outside the served folder. One thread per connection; enough for a demo page.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

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

fn respond(stream: &mut TcpStream, status: &str, mime: &str, len: u64) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {mime}\r\nContent-Length: {len}\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )
}

fn handle(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?.take(16 * 1024));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
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
                std::io::copy(&mut file, &mut stream)?;
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

/// Serves `root` on `listener` until the process ends.
pub fn serve(listener: TcpListener, root: PathBuf) -> std::io::Result<()> {
    let root = std::sync::Arc::new(root);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &root);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pocketrec-serve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("web/pkg")).unwrap();
        std::fs::write(dir.join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("web/pkg/a b.wasm"), [0u8, 97, 115, 109]).unwrap();
        dir
    }

    fn get(addr: std::net::SocketAddr, target: &str) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (String::from_utf8_lossy(&out[..split]).into_owned(), out[split + 4..].to_vec())
    }

    #[test]
    fn serves_files_with_mime_types_and_refuses_traversal() {
        let root = site();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let r = root.clone();
        std::thread::spawn(move || serve(listener, r));

        let (head, body) = get(addr, "/");
        assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/html"), "{head}");
        assert_eq!(body, b"<p>hi</p>");
        let (head, body) = get(addr, "/web/pkg/a%20b.wasm?v=1");
        assert!(head.contains("Content-Type: application/wasm"), "{head}");
        assert_eq!(body, [0, 97, 115, 109]);
        for bad in ["/../etc/passwd", "/web/../../etc/passwd", "/%2e%2e/etc/passwd", "/..%2fetc%2fpasswd",
                    "/web\\..\\..\\x", "/nope.js", "/%zz", "//etc/passwd"] {
            let (head, _) = get(addr, bad);
            assert!(head.starts_with("HTTP/1.1 404"), "{bad}: {head}");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime(Path::new("m.safetensors")), "application/octet-stream");
        assert_eq!(mime(Path::new("a.JS")), "text/javascript; charset=utf-8");
        assert_eq!(mime(Path::new("c.json")), "application/json");
        assert_eq!(mime(Path::new("s.css")), "text/css; charset=utf-8");
    }
}
