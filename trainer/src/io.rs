//! File output that never leaves a half-written or wrong file behind. Every file the CLI writes
//! (models, checkpoints, scores, tables, plots, synthetic and demo data) goes through
//! [`AtomicFile`], so they all behave the same way:
//!
//! - the target is resolved through symlinks first: a link keeps pointing at the new content;
//! - a target that exists and is not a regular file (a directory, a device, a FIFO) is refused;
//! - the bytes go to a hidden `.NAME.tmpPID` beside the target, are fsynced, then renamed over it
//!   (and the directory fsynced): a reader sees the old file or the new one, never a mix, and a
//!   failed or killed run leaves the old file untouched;
//! - a writer dropped without [`AtomicFile::commit`] removes its temporary, and temporaries left by
//!   processes that died (kill -9, power loss) are removed by the next write to the same target
//!   (on Linux, where `/proc` tells whether their PID still runs).
//!
//! [`Output`] adds `-` for standard output, for streams where that makes sense (`score -o -`).
//! [`Spool`] keeps a copy of standard input for readers that need it more than once (training).

use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A file being written atomically; [`commit`](AtomicFile::commit) puts it in place.
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path`: resolves symlinks, refuses non-regular targets, removes stale
    /// temporaries of dead processes, and creates this process's temporary beside the target.
    pub fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        let path = path.as_ref();
        if path.as_os_str() == "-" {
            bail!(
                "\"-\" (standard output) is not supported for this output: give a file path (./- for a file named -)"
            );
        }
        let target = resolve(path)?;
        clean_stale_temps(&target);
        let tmp = temp_path(&target)?;
        let file = File::create(&tmp)
            .with_context(|| format!("cannot write {}: cannot create {}", path.display(), tmp.display()))?;
        if let Ok(old) = fs::metadata(&target) {
            // Replacing a file keeps its permissions.
            let _ = fs::set_permissions(&tmp, old.permissions());
        }
        Ok(AtomicFile { target, tmp, file: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// The file the content will end up in (the symlink's target for a symlink).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, fsyncs and renames the temporary over the target.
    pub fn commit(mut self) -> Result<()> {
        let writer = self.file.take().expect("an AtomicFile is committed once");
        let put = || -> io::Result<()> {
            let file = writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            fs::rename(&self.tmp, &self.target)
        };
        if let Err(e) = put() {
            let _ = fs::remove_file(&self.tmp);
            return Err(e).with_context(|| format!("cannot write {}", self.target.display()));
        }
        // Make the rename itself durable; not every platform can open a directory, so best effort.
        if let Ok(d) = File::open(parent(&self.target)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    /// Not committed (an error on the way): the target keeps its old content.
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` through an [`AtomicFile`].
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path.as_ref())?;
    file.write_all(bytes).with_context(|| format!("cannot write {}", path.as_ref().display()))?;
    file.commit()
}

/// A stream output: `-` is standard output, anything else an [`AtomicFile`].
pub enum Output {
    Stdout(BufWriter<io::Stdout>),
    File(AtomicFile),
}

impl Output {
    pub fn create(path: &Path) -> Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout(BufWriter::new(io::stdout())));
        }
        AtomicFile::create(path).map(Output::File)
    }

    /// Flushes standard output, or commits the file.
    pub fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush().context("cannot write to standard output"),
            Output::File(f) => f.commit(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

/// Standard input copied once to a hidden temporary file, for a reader that needs it more than
/// once; removed on drop (and, after a kill, by the next run's stale-temporary cleanup).
pub struct Spool {
    path: PathBuf,
    bytes: u64,
}

impl Spool {
    /// Copies all of standard input to `.NAME.tmpPID` beside `target` (NAME its file name).
    pub fn stdin(target: &Path) -> Result<Spool> {
        let target = resolve(target)?;
        clean_stale_temps(&target);
        let mut spool = Spool { path: temp_path(&target)?, bytes: 0 };
        let copy = |path: &Path| -> io::Result<u64> {
            let mut file = BufWriter::with_capacity(1 << 20, File::create(path)?);
            let n = io::copy(&mut io::stdin().lock(), &mut file)?;
            file.flush()?;
            Ok(n)
        };
        spool.bytes = copy(&spool.path).with_context(|| {
            format!(
                "cannot copy standard input to {} (training reads it more than once); free space there",
                spool.path.display()
            )
        })?;
        Ok(spool)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes read from standard input.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Follows symlinks to the file a write must replace; refuses existing non-regular files.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&p).with_context(|| format!("cannot read the symlink {}", p.display()))?;
            p = parent(&p).join(link);
        } else if kind.is_file() {
            return Ok(p);
        } else {
            bail!(
                "{} is {}, not a regular file: refusing to replace it; give a file path",
                path.display(),
                describe(&kind)
            );
        }
    }
    bail!("cannot write {}: too many levels of symbolic links", path.display())
}

fn describe(kind: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a named pipe";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() { "a directory" } else { "not a regular file" }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn file_name(path: &Path) -> Result<String> {
    let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    Ok(name.to_string_lossy().into_owned())
}

/// This process's temporary for `target`: `.NAME.tmpPID` in the same directory.
fn temp_path(target: &Path) -> Result<PathBuf> {
    Ok(parent(target).join(format!(".{}.tmp{}", file_name(target)?, std::process::id())))
}

/// Removes the `.NAME.tmpPID` temporaries of `target` (after symlinks) whose process no longer
/// runs. Only where `/proc` tells which processes run (Linux); elsewhere nothing is removed.
pub fn clean_stale_temps(target: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(target) = resolve(target) else { return };
    let Ok(name) = file_name(&target) else { return };
    let prefix = format!(".{name}.tmp");
    let own = std::process::id().to_string();
    let Ok(entries) = fs::read_dir(parent(&target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else {
            continue;
        };
        let is_pid = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if is_pid && pid != own && !proc.join(pid).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pocketrec-io-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = scratch("replace");
        let path = dir.join("m.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(&dir), ["m.bin"]);
        let err = write_atomic(dir.join("missing-dir/m.bin"), b"x").unwrap_err();
        assert!(format!("{err:#}").contains("cannot write"), "{err:#}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_uncommitted_write_leaves_the_old_file() {
        let dir = scratch("uncommitted");
        let path = dir.join("s.txt");
        fs::write(&path, "old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half of the new").unwrap();
        drop(f);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(&dir), ["s.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_kept() {
        let dir = scratch("symlink");
        fs::create_dir(dir.join("real")).unwrap();
        fs::write(dir.join("real/m.bin"), "old").unwrap();
        std::os::unix::fs::symlink("real/m.bin", dir.join("link")).unwrap();
        write_atomic(dir.join("link"), b"new").unwrap();
        assert!(fs::symlink_metadata(dir.join("link")).unwrap().file_type().is_symlink());
        assert_eq!(fs::read(dir.join("real/m.bin")).unwrap(), b"new");
        // A dangling link is followed too: the write creates its target.
        std::os::unix::fs::symlink("real/new.bin", dir.join("dangling")).unwrap();
        write_atomic(dir.join("dangling"), b"made").unwrap();
        assert_eq!(fs::read(dir.join("real/new.bin")).unwrap(), b"made");
        assert_eq!(names(&dir.join("real")), ["m.bin", "new.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_regular_targets_are_refused() {
        let dir = scratch("nonregular");
        let err = format!("{:#}", write_atomic(&dir, b"x").unwrap_err());
        assert!(err.contains("is a directory, not a regular file"), "{err}");
        // A named pipe stands for the special files (a device node, when run as root, would be at risk).
        let fifo = dir.join("fifo");
        if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
            let err = format!("{:#}", write_atomic(&fifo, b"x").unwrap_err());
            assert!(err.contains("is a named pipe, not a regular file"), "{err}");
            assert!(!fs::metadata(&fifo).unwrap().is_file());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        if !Path::new("/proc/self").exists() {
            eprintln!("no /proc: stale temporaries are kept on this platform");
            return;
        }
        let dir = scratch("stale");
        let path = dir.join("m.bin");
        // PID 1 runs; u32::MAX cannot; our own PID is ours.
        let live = dir.join(".m.bin.tmp1");
        let dead = dir.join(format!(".m.bin.tmp{}", u32::MAX));
        let other = dir.join(format!(".other.bin.tmp{}", u32::MAX));
        for p in [&live, &dead, &other] {
            fs::write(p, "x").unwrap();
        }
        write_atomic(&path, b"m").unwrap();
        assert_eq!(names(&dir), [".m.bin.tmp1".to_string(), format!(".other.bin.tmp{}", u32::MAX), "m.bin".into()]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
