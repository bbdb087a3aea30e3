//! Downloads from the Hugging Face hub, as `huggingface-cli`, ollama and llama.cpp's `-hf`
//! users expect: the repository's file list with each file's checksum, resumable transfers
//! verified against those checksums, `HF_TOKEN` for gated repositories, `HF_ENDPOINT` for
//! mirrors, and `HF_HUB_OFFLINE=1` (or `--offline`) to forbid the network.

mod download;
mod progress;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use download::{Progress, Quiet};
pub use progress::stderr_progress;

/// The public hub, unless `HF_ENDPOINT` names a mirror.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Why a listing or a download failed; each message says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The network is off ([`Hub::offline`]) and what was asked for is not on disk.
    #[error(
        "`{what}` is not on this machine and downloads are off (--offline or HF_HUB_OFFLINE): run `agent pull {what}` with the network on, or pass --model with a local path"
    )]
    Offline {
        /// What was asked for (`NAME` or `NAME:QUANT`).
        what: String,
    },
    /// The repository is gated (HTTP 401 or 403) and no token is set.
    #[error(
        "{repo} is gated: accept its license at {endpoint}/{repo} with your account, then set HF_TOKEN to an access token of that account"
    )]
    GatedNoToken {
        /// The repository (`owner/name`).
        repo: String,
        /// The hub's base URL.
        endpoint: String,
    },
    /// The hub refused the token for the repository (HTTP 401 or 403).
    #[error(
        "{repo} refused the token in HF_TOKEN (HTTP {status}): accept the license at {endpoint}/{repo} with the token's account, or check that the token is valid"
    )]
    GatedRefused {
        /// The repository (`owner/name`).
        repo: String,
        /// The hub's base URL.
        endpoint: String,
        /// The HTTP status.
        status: u16,
    },
    /// HTTP 404: no such repository, revision or file.
    #[error("{url}: not found (HTTP 404): check the repository and file name")]
    NotFound {
        /// The URL requested.
        url: String,
    },
    /// Any other HTTP error status (a download retries server errors and 429 first).
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The connection failed or dropped (a download retries first, resuming).
    #[error("{url}: {message}")]
    Network {
        /// The URL requested.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The hub's file listing could not be read.
    #[error("{url}: the hub's answer is not what was expected: {message}")]
    BadListing {
        /// The URL of the listing.
        url: String,
        /// Why it could not be read.
        message: String,
    },
    /// A downloaded file's size or checksum differs from the listing's; the file was deleted.
    #[error(
        "{file}: the download does not match the hub's checksum ({kind} {expected}, got {got}); it was deleted, run again to download it anew"
    )]
    Checksum {
        /// The file's name in the repository.
        file: String,
        /// What was compared: `size`, `sha256` or `git blob id`.
        kind: &'static str,
        /// The listing's value.
        expected: String,
        /// The downloaded file's value.
        got: String,
    },
    /// A local file or directory could not be created, written or read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// No GGUF file of the repository has the quantization asked for.
    #[error("{repo} has no file matching {pattern}; it has: {available}")]
    NoMatch {
        /// The repository (`owner/name`).
        repo: String,
        /// The file name looked for (`*-QUANT.gguf`).
        pattern: String,
        /// The repository's GGUF files, comma-separated.
        available: String,
    },
}

/// How the hub is reached, from the environment (and the command line's `--offline`).
#[derive(Debug, Clone)]
pub struct Hub {
    /// The hub's base URL, without a trailing `/`.
    pub endpoint: String,
    /// The access token sent with every request (gated repositories need one).
    pub token: Option<String>,
    /// No network: [`Hub::list`] fails with [`HubError::Offline`].
    pub offline: bool,
    agent: ureq::Agent,
}

/// What a file must hash to, as the hub lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    /// Files stored with Git LFS (weights): the SHA-256 of the content.
    Sha256(String),
    /// Small files in git itself: the git blob id (SHA-1 of `blob {len}\0` and the content).
    GitBlob(String),
}

/// One file of a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// The file's path in the repository (`/`-separated).
    pub name: String,
    /// Its size in bytes, when the hub lists it.
    pub size: Option<u64>,
    /// What its content must hash to, when the hub lists it.
    pub checksum: Option<Checksum>,
}

/// A repository at one commit.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The repository (`owner/name`).
    pub repo: String,
    /// The commit the names resolve at (downloads use it, so that files of one model never
    /// come from two commits).
    pub commit: String,
    /// Every file of the repository at that commit.
    pub files: Vec<RemoteFile>,
}

#[derive(Deserialize)]
struct ApiModel {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<ApiSibling>,
}

#[derive(Deserialize)]
struct ApiSibling {
    rfilename: String,
    size: Option<u64>,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    lfs: Option<ApiLfs>,
}

#[derive(Deserialize)]
struct ApiLfs {
    sha256: String,
    size: Option<u64>,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

impl Hub {
    /// `HF_ENDPOINT`, `HF_TOKEN` (or `HUGGING_FACE_HUB_TOKEN`), `HF_HUB_OFFLINE`; `offline`
    /// forces the network off whatever the environment says.
    pub fn from_env(offline: bool) -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let token = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|t| !t.trim().is_empty()));
        Self::new(&endpoint, token, offline || env_flag("HF_HUB_OFFLINE"))
    }

    /// The hub at `endpoint`, sending `token` when there is one; `offline` forbids the
    /// network.
    pub fn new(endpoint: &str, token: Option<String>, offline: bool) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(20))
            // Between reads, not for the whole file: a slow link still finishes.
            .timeout_read(Duration::from_secs(60))
            .user_agent(concat!("agent/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            offline,
            agent,
        }
    }

    fn get(&self, url: &str) -> ureq::Request {
        let req = self.agent.get(url);
        match &self.token {
            Some(t) => req.set("Authorization", &format!("Bearer {}", t.trim())),
            None => req,
        }
    }

    /// Maps a refusal to the error a user can act on.
    fn refusal(&self, repo: &str, url: &str, status: u16) -> HubError {
        match status {
            401 | 403 if self.token.is_none() => HubError::GatedNoToken {
                repo: repo.into(),
                endpoint: self.endpoint.clone(),
            },
            401 | 403 => HubError::GatedRefused {
                repo: repo.into(),
                endpoint: self.endpoint.clone(),
                status,
            },
            404 => HubError::NotFound { url: url.into() },
            _ => HubError::Status {
                url: url.into(),
                status,
            },
        }
    }

    /// The files of `repo` at `revision` (a branch, tag or commit), with sizes and checksums.
    pub fn list(&self, what: &str, repo: &str, revision: &str) -> Result<Listing, HubError> {
        if self.offline {
            return Err(HubError::Offline { what: what.into() });
        }
        let url = format!(
            "{}/api/models/{repo}/revision/{revision}?blobs=true",
            self.endpoint
        );
        let resp = match self.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) => return Err(self.refusal(repo, &url, code)),
            Err(e) => {
                return Err(HubError::Network {
                    url,
                    message: e.to_string(),
                });
            }
        };
        let api: ApiModel = resp.into_json().map_err(|e| HubError::BadListing {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let commit = api.sha.unwrap_or_else(|| revision.to_string());
        let files = api
            .siblings
            .into_iter()
            .map(|s| RemoteFile {
                size: s.lfs.as_ref().and_then(|l| l.size).or(s.size),
                checksum: match (s.lfs, s.blob_id) {
                    (Some(l), _) => Some(Checksum::Sha256(l.sha256.to_ascii_lowercase())),
                    (None, Some(b)) => Some(Checksum::GitBlob(b.to_ascii_lowercase())),
                    (None, None) => None,
                },
                name: s.rfilename,
            })
            .collect();
        Ok(Listing {
            repo: repo.into(),
            commit,
            files,
        })
    }

    /// Downloads `files` of a listing into `dir` (their names kept), each resumed from where
    /// an earlier attempt stopped and verified against its checksum. Files already there and
    /// verified are not fetched again.
    pub fn fetch(
        &self,
        listing: &Listing,
        files: &[RemoteFile],
        dir: &Path,
        progress: &mut dyn Progress,
    ) -> Result<(), HubError> {
        std::fs::create_dir_all(dir).map_err(|e| HubError::Io {
            path: dir.into(),
            message: e.to_string(),
        })?;
        for file in files {
            let url = format!(
                "{}/{}/resolve/{}/{}",
                self.endpoint, listing.repo, listing.commit, file.name
            );
            download::file(self, &listing.repo, &url, file, dir, progress)?;
        }
        Ok(())
    }
}

/// The files a Hugging Face-layout model needs: configs, tokenizer, chat template and
/// safetensors weights at the top level. Not the `original/` checkpoints some repositories
/// carry beside them, nor other weight formats.
pub fn model_files(listing: &Listing) -> Vec<RemoteFile> {
    listing
        .files
        .iter()
        .filter(|f| {
            !f.name.contains('/')
                && (f.name.ends_with(".safetensors")
                    || f.name.ends_with(".json")
                    || f.name.ends_with(".jinja")
                    || f.name == "tokenizer.model")
        })
        .cloned()
        .collect()
}

/// The GGUF file(s) of one quantization (`q4_k_m`, `Q8_0`): a single file named
/// `…-Q4_K_M.gguf`, or the parts of a split one (`…-Q4_K_M-00001-of-00002.gguf`), in order.
pub fn gguf_files(listing: &Listing, quant: &str) -> Result<Vec<RemoteFile>, HubError> {
    let q = quant.to_ascii_lowercase();
    let mut found: Vec<RemoteFile> = listing
        .files
        .iter()
        .filter(|f| {
            let n = f.name.to_ascii_lowercase();
            let Some(stem) = n.strip_suffix(".gguf") else {
                return false;
            };
            let stem = strip_split_suffix(stem);
            stem.ends_with(&format!("-{q}")) || stem.ends_with(&format!(".{q}"))
        })
        .cloned()
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if found.is_empty() {
        let available: Vec<&str> = listing
            .files
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| n.ends_with(".gguf"))
            .collect();
        return Err(HubError::NoMatch {
            repo: listing.repo.clone(),
            pattern: format!("*-{quant}.gguf"),
            available: available.join(", "),
        });
    }
    Ok(found)
}

/// `name-00001-of-00003` → `name`.
fn strip_split_suffix(stem: &str) -> &str {
    let parts: Vec<&str> = stem.rsplitn(4, '-').collect();
    match parts[..] {
        [total, "of", part, rest]
            if total.chars().all(|c| c.is_ascii_digit())
                && part.chars().all(|c| c.is_ascii_digit()) =>
        {
            rest
        }
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(names: &[&str]) -> Listing {
        Listing {
            repo: "o/r".into(),
            commit: "c".into(),
            files: names
                .iter()
                .map(|n| RemoteFile {
                    name: n.to_string(),
                    size: None,
                    checksum: None,
                })
                .collect(),
        }
    }

    fn names(files: &[RemoteFile]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_model_is_its_configs_tokenizer_template_and_safetensors() {
        let l = listing(&[
            ".gitattributes",
            "README.md",
            "config.json",
            "chat_template.jinja",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "original/consolidated.00.pth",
            "original/params.json",
            "tokenizer.json",
            "pytorch_model.bin",
        ]);
        assert_eq!(
            names(&model_files(&l)),
            vec![
                "config.json",
                "chat_template.jinja",
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
                "tokenizer.json",
            ]
        );
    }

    #[test]
    fn a_quantization_names_its_gguf_files() {
        let l = listing(&[
            "Qwen3-30B-A3B-Q4_K_M.gguf",
            "Qwen3-30B-A3B-Q4_K_S.gguf",
            "Qwen3-30B-A3B-Q8_0.gguf",
            "big/Model-Q8_0-00002-of-00002.gguf",
            "big/Model-Q8_0-00001-of-00002.gguf",
        ]);
        assert_eq!(
            names(&gguf_files(&l, "q4_k_m").unwrap()),
            vec!["Qwen3-30B-A3B-Q4_K_M.gguf"]
        );
        assert_eq!(
            names(&gguf_files(&l, "Q8_0").unwrap()),
            vec![
                "Qwen3-30B-A3B-Q8_0.gguf",
                "big/Model-Q8_0-00001-of-00002.gguf",
                "big/Model-Q8_0-00002-of-00002.gguf",
            ]
        );
        let err = gguf_files(&l, "q2_k").unwrap_err().to_string();
        assert!(
            err.contains("*-q2_k.gguf") && err.contains("Q4_K_S"),
            "{err}"
        );
    }
}
