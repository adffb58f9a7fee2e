//! `pocketrec serve` end to end, as a child process: files come with their MIME types; no request
//! reaches a file that exists outside the served folder; idle connections neither take a thread
//! each nor stay open past the header timeout; a file as `--dir` is refused.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A scratch folder holding `root/` (served) and, beside it, `secret.txt` (never served).
fn site(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocketrec-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("root/web/pkg")).unwrap();
    std::fs::write(dir.join("root/index.html"), "<p>hi</p>").unwrap();
    std::fs::write(dir.join("root/web/pkg/a b.wasm"), [0u8, 97, 115, 109]).unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP SECRET").unwrap();
    dir
}

/// The server process, killed when dropped (also when a test fails).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(root: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketrec"))
        .args(["serve", "--dir", root.to_str().unwrap(), "--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run pocketrec serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().rsplit_once("127.0.0.1:").and_then(|(_, rest)| rest.split('/').next()?.parse::<u16>().ok());
    let port = port.unwrap_or_else(|| panic!("no port in {line:?}"));
    Server { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
}

fn get(addr: SocketAddr, target: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| panic!("{target}: no response head"));
    (String::from_utf8_lossy(&out[..split]).into_owned(), out[split + 4..].to_vec())
}

#[test]
fn serves_files_and_nothing_outside_the_root() {
    let dir = site("traversal");
    let root = dir.join("root");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("secret.txt"), root.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(&dir, root.join("up")).unwrap();
    }
    let server = serve(&root, &[]);

    let (head, body) = get(server.addr, "/");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/html"), "{head}");
    assert_eq!(body, b"<p>hi</p>");
    let (head, body) = get(server.addr, "/web/pkg/a%20b.wasm?v=1");
    assert!(head.contains("Content-Type: application/wasm"), "{head}");
    assert_eq!(body, [0, 97, 115, 109]);

    // Every probe names secret.txt, which exists one level above the root.
    let secret = dir.join("secret.txt").to_str().unwrap().to_string();
    let encoded_abs = secret.replace('/', "%2f");
    let probes = [
        "/../secret.txt".to_string(),
        "/web/../../secret.txt".into(),
        "/web/pkg/../../../secret.txt".into(),
        "/%2e%2e/secret.txt".into(),
        "/%2E%2E/secret.txt".into(),
        "/.%2e/secret.txt".into(),
        "/..%2fsecret.txt".into(),
        "/%2e%2e%2fsecret.txt".into(),
        "/web/..%2F..%2Fsecret.txt".into(),
        "/..\\secret.txt".into(),
        "/%2e%2e%5csecret.txt".into(),
        "../secret.txt".into(),
        format!("/{secret}"),
        format!("/{encoded_abs}"),
        secret.clone(),
        format!("file://{secret}"),
        "/link.txt".into(),
        "/up/secret.txt".into(),
        "/up/root/../secret.txt".into(),
    ];
    for probe in &probes {
        let (head, body) = get(server.addr, probe);
        assert!(!String::from_utf8_lossy(&body).contains("TOP SECRET"), "{probe} served the secret: {head}");
        assert!(head.starts_with("HTTP/1.1 404"), "{probe}: {head}");
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Threads of a process, from /proc (Linux).
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

#[test]
#[cfg(target_os = "linux")]
fn idle_connections_share_a_few_threads_and_are_closed_after_the_header_timeout() {
    let dir = site("idle");
    let server = serve(&dir.join("root"), &["--threads", "4", "--header-timeout", "0.5", "--idle-timeout", "0.5"]);
    let pid = server.child.id();
    let idle: Vec<TcpStream> = (0..500).map(|_| TcpStream::connect(server.addr).unwrap()).collect();
    // The server takes connections in order: once this request is answered, it has accepted all
    // 500 idle ones before it.
    let (head, body) = get(server.addr, "/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"<p>hi</p>");
    let n = threads(pid);
    assert!(n <= 4 + 2, "500 idle connections made the server run {n} threads");

    // Each idle connection is closed by the server (end of stream or reset). The read timeout only
    // keeps a broken server from hanging the test; it is far above the header timeout.
    for (i, mut s) in idle.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        match s.read(&mut [0u8; 64]) {
            Ok(0) => {}
            Ok(k) => panic!("idle connection {i} got {k} bytes"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "idle connection {i} still open: {e}"),
        }
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_as_dir_is_refused() {
    let dir = site("file-dir");
    let file = dir.join("secret.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pocketrec"))
        .args(["serve", "--dir", file.to_str().unwrap(), "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that starts prints its address first; one that refuses prints nothing and exits.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if !line.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve started on a file: {line}");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.starts_with("pocketrec: error: --dir") && stderr.contains("not a folder"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
