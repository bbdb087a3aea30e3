//! One file from the hub: written to `NAME.incomplete`, resumed with a `Range` request after a
//! dropped connection (or in a later run), verified, then renamed into place. A file under its
//! own name is therefore always whole and verified.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{Checksum, Hub, HubError, RemoteFile};

/// Attempts per file before a network error is reported (each resumes the last).
const ATTEMPTS: u32 = 5;

/// Where a transfer reports its bytes (a progress bar on a terminal).
pub trait Progress {
    /// A file starts; `done` bytes of it are already on disk from an earlier attempt.
    fn start(&mut self, file: &str, total: Option<u64>, done: u64);
    /// `bytes` more of the file arrived.
    fn advance(&mut self, bytes: u64);
    /// The file's transfer ended; on success the file is verified next.
    fn finish(&mut self);
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> HubError + '_ {
    move |e| HubError::Io {
        path: path.into(),
        message: e.to_string(),
    }
}

fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".incomplete");
    dest.with_file_name(name)
}

pub(super) fn file(
    hub: &Hub,
    repo: &str,
    url: &str,
    f: &RemoteFile,
    dir: &Path,
    progress: &mut dyn Progress,
) -> Result<(), HubError> {
    let dest = dir.join(&f.name);
    if dest.is_file() {
        return Ok(());
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let part = partial_path(&dest);
    let mut last_error = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << attempt.min(4)));
        }
        match transfer(hub, repo, url, f, &part, progress) {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(Transfer::Retry(e)) => last_error = Some(e),
            Err(Transfer::Fatal(e)) => return Err(e),
        }
    }
    progress.finish();
    if let Some(e) = last_error {
        return Err(e);
    }
    verify(&part, f)?;
    std::fs::rename(&part, &dest).map_err(io(&dest))
}

enum Transfer {
    /// The connection failed or dropped: resume.
    Retry(HubError),
    Fatal(HubError),
}

fn transfer(
    hub: &Hub,
    repo: &str,
    url: &str,
    f: &RemoteFile,
    part: &Path,
    progress: &mut dyn Progress,
) -> Result<(), Transfer> {
    let fatal = |e| Transfer::Fatal(e);
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if f.size.is_some_and(|s| have >= s) {
        // Whole already (or too long: verification says so).
        return Ok(());
    }
    let mut req = hub.get(url);
    if have > 0 {
        req = req.set("Range", &format!("bytes={have}-"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        // Asked past the end: what is there is all there is; verification judges it.
        Err(ureq::Error::Status(416, _)) => return Ok(()),
        Err(ureq::Error::Status(code, _)) if code >= 500 || code == 429 => {
            return Err(Transfer::Retry(HubError::Status {
                url: url.into(),
                status: code,
            }));
        }
        Err(ureq::Error::Status(code, _)) => return Err(fatal(hub.refusal(repo, url, code))),
        Err(e) => {
            return Err(Transfer::Retry(HubError::Network {
                url: url.into(),
                message: e.to_string(),
            }));
        }
    };
    let resumed = resp.status() == 206;
    if !resumed {
        have = 0;
    }
    let mut out = OpenOptions::new()
        .create(true)
        .write(true)
        .append(resumed)
        .truncate(!resumed)
        .open(part)
        .map_err(|e| fatal(io(part)(e)))?;
    progress.start(&f.name, f.size, have);
    let mut body = resp.into_reader();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                out.flush().map_err(|e| fatal(io(part)(e)))?;
                return Err(Transfer::Retry(HubError::Network {
                    url: url.into(),
                    message: format!("the connection dropped: {e}"),
                }));
            }
        };
        out.write_all(&buf[..n]).map_err(|e| fatal(io(part)(e)))?;
        progress.advance(n as u64);
    }
    out.flush().map_err(|e| fatal(io(part)(e)))?;
    // A body that ended early without an error is a dropped connection too.
    let len = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    match f.size {
        Some(size) if len < size => Err(Transfer::Retry(HubError::Network {
            url: url.into(),
            message: format!("the connection closed after {len} of {size} bytes"),
        })),
        _ => Ok(()),
    }
}

/// Checks the whole file against the hub's size and checksum; a mismatch deletes it.
fn verify(part: &Path, f: &RemoteFile) -> Result<(), HubError> {
    let len = std::fs::metadata(part).map_err(io(part))?.len();
    let mismatch = |kind, expected: String, got: String| {
        let _ = std::fs::remove_file(part);
        HubError::Checksum {
            file: f.name.clone(),
            kind,
            expected,
            got,
        }
    };
    if let Some(size) = f.size.filter(|&s| s != len) {
        return Err(mismatch("size", size.to_string(), len.to_string()));
    }
    let Some(checksum) = &f.checksum else {
        return Ok(());
    };
    let mut file = File::open(part).map_err(io(part))?;
    let (kind, expected, got) = match checksum {
        Checksum::Sha256(want) => {
            let mut h = Sha256::new();
            hash_into(&mut file, part, |b| h.update(b))?;
            ("sha256", want, hex::encode(h.finalize()))
        }
        Checksum::GitBlob(want) => {
            let mut h = Sha1::new();
            h.update(format!("blob {len}\0").as_bytes());
            hash_into(&mut file, part, |b| h.update(b))?;
            ("git blob id", want, hex::encode(h.finalize()))
        }
    };
    if *expected != got {
        return Err(mismatch(kind, expected.clone(), got));
    }
    Ok(())
}

fn hash_into(file: &mut File, path: &Path, mut update: impl FnMut(&[u8])) -> Result<(), HubError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok(());
        }
        update(&buf[..n]);
    }
}
