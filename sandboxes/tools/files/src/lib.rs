//! `files`: list, read, search and write files within the directories the tool's policy
//! grants. The guest does no path checking of its own: the sandbox is what keeps it inside
//! its preopens, and the hostile tests check that. A typed WIT export (`wit/files.wit`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

wit_bindgen::generate!({ world: "tool", path: "wit" });

use exports::agent::files::files::{Entry, Found, Guest, Kind, WriteMode};

#[unsafe(link_section = "agent-tool-wit")]
#[used]
static WIT: [u8; include_bytes!("../wit/files.wit").len()] = *include_bytes!("../wit/files.wit");

const DEFAULT_READ: u32 = 64 << 10;
const MAX_READ: u32 = 1 << 20;
const DEFAULT_RESULTS: u32 = 50;
const MAX_LINE_CHARS: usize = 200;
/// Files bigger than this are skipped by search.
const MAX_SEARCH_FILE: u64 = 8 << 20;

fn io(what: &str, path: &str, e: std::io::Error) -> String {
    format!("cannot {what} {path}: {e}")
}

fn kind(t: std::fs::FileType) -> Kind {
    if t.is_symlink() {
        Kind::Symlink
    } else if t.is_dir() {
        Kind::Directory
    } else if t.is_file() {
        Kind::File
    } else {
        Kind::Other
    }
}

fn search_in(
    path: &Path,
    needle: &str,
    ignore_case: bool,
    max: usize,
    out: &mut Vec<Found>,
) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names {
            if out.len() >= max {
                break;
            }
            // Unreadable entries are skipped, not fatal: the rest is still worth searching.
            let _ = search_in(&p, needle, ignore_case, max, out);
        }
        return Ok(());
    }
    if !meta.is_file() || meta.len() > MAX_SEARCH_FILE {
        return Ok(());
    }
    let bytes = std::fs::read(path)?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(());
    };
    for (i, line) in text.lines().enumerate() {
        let hit = if ignore_case {
            line.to_lowercase().contains(needle)
        } else {
            line.contains(needle)
        };
        if hit {
            out.push(Found {
                path: path.display().to_string(),
                line: i as u32 + 1,
                text: line.chars().take(MAX_LINE_CHARS).collect(),
            });
            if out.len() >= max {
                break;
            }
        }
    }
    Ok(())
}

struct Files;

impl Guest for Files {
    fn list(path: String) -> Result<Vec<Entry>, String> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&path).map_err(|e| io("list", &path, e))? {
            let e = e.map_err(|e| io("list", &path, e))?;
            let t = e.file_type().map_err(|e| io("list", &path, e))?;
            let size = if t.is_file() {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            } else {
                0
            };
            entries.push(Entry {
                name: e.file_name().to_string_lossy().into_owned(),
                kind: kind(t),
                size,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn read(path: String, offset: Option<u64>, max_bytes: Option<u32>) -> Result<String, String> {
        let mut f = std::fs::File::open(&path).map_err(|e| io("read", &path, e))?;
        let len = f.metadata().map_err(|e| io("read", &path, e))?.len();
        let offset = offset.unwrap_or(0);
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io("read", &path, e))?;
        let want = max_bytes.unwrap_or(DEFAULT_READ).min(MAX_READ);
        let mut buf = Vec::new();
        f.take(want as u64)
            .read_to_end(&mut buf)
            .map_err(|e| io("read", &path, e))?;
        // Cut at a character boundary; a file that is not text says so instead of garbling.
        let text = match std::str::from_utf8(&buf) {
            Ok(t) => t.to_string(),
            Err(e) if e.error_len().is_none() => {
                String::from_utf8_lossy(&buf[..e.valid_up_to()]).into_owned()
            }
            Err(_) => return Err(format!("{path} is not UTF-8 text")),
        };
        let end = offset + text.len() as u64;
        Ok(if end < len {
            format!("{text}\n[read bytes {offset}..{end} of {len}; pass offset {end} for more]")
        } else {
            text
        })
    }

    fn search(
        path: String,
        text: String,
        ignore_case: Option<bool>,
        max_results: Option<u32>,
    ) -> Result<Vec<Found>, String> {
        if text.is_empty() {
            return Err("`text` is empty: give the text to search for".into());
        }
        let ignore_case = ignore_case.unwrap_or(false);
        let needle = if ignore_case {
            text.to_lowercase()
        } else {
            text
        };
        let mut out = Vec::new();
        search_in(
            Path::new(&path),
            &needle,
            ignore_case,
            max_results.unwrap_or(DEFAULT_RESULTS).max(1) as usize,
            &mut out,
        )
        .map_err(|e| io("search", &path, e))?;
        Ok(out)
    }

    fn write(path: String, content: String, mode: Option<WriteMode>) -> Result<String, String> {
        let mut opts = std::fs::OpenOptions::new();
        let verb = match mode.unwrap_or(WriteMode::Create) {
            WriteMode::Create => {
                opts.write(true).create_new(true);
                "created"
            }
            WriteMode::Overwrite => {
                opts.write(true).create(true).truncate(true);
                "overwrote"
            }
            WriteMode::Append => {
                opts.append(true).create(true);
                "appended to"
            }
        };
        let mut f = opts.open(&path).map_err(|e| io("write", &path, e))?;
        f.write_all(content.as_bytes())
            .map_err(|e| io("write", &path, e))?;
        Ok(format!("{verb} {path} ({} bytes)", content.len()))
    }
}

export!(Files);
