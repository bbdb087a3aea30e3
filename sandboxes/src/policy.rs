//! What a wasm tool may do. Everything is denied unless granted: no files, no environment, no
//! network; a small memory, CPU and wall-clock budget; bounded output.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Access to one host directory, seen by the guest at `guest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preopen {
    /// The directory on the host; [`Policy::checked`] makes it canonical.
    pub host: PathBuf,
    /// Where the guest sees it: an absolute path, such as `/data`.
    pub guest: String,
    /// What the guest may do there; read-only by default.
    #[serde(default)]
    pub mode: Mode,
}

/// What a guest may do in a preopened directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Read files and list directories.
    #[default]
    #[serde(alias = "ro")]
    ReadOnly,
    /// Also create, write, rename and delete.
    #[serde(alias = "rw")]
    ReadWrite,
}

/// What one wasm tool set may do and use. The default grants nothing and sets small limits;
/// [`Policy::checked`] validates a policy before it is used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Directories the tool sees; none by default.
    pub preopens: Vec<Preopen>,
    /// Environment variables passed by name (their host values); none by default.
    pub env: Vec<String>,
    /// Most linear memory, in bytes.
    pub memory_bytes: u64,
    /// Most time running wasm code, in milliseconds (epoch deadline).
    pub cpu_ms: u64,
    /// A deterministic CPU cap instead of `cpu_ms`: the most fuel (about one unit per wasm
    /// instruction) a call may burn. The same call then stops at the same point on every run.
    pub fuel: Option<u64>,
    /// A fresh, empty read-write directory at `/tmp` for each call, deleted after it.
    pub scratch: bool,
    /// Most time a call takes in all, in milliseconds (also stops a guest blocked in a host
    /// call, which the CPU deadline cannot).
    pub wall_ms: u64,
    /// Most bytes of a result the model reads.
    pub output_bytes: usize,
    /// Most bytes kept of each of stdout and stderr (for the trace).
    pub stdio_bytes: usize,
}

/// The most memory a policy may grant (the pooling allocator reserves this much per slot).
pub const MAX_MEMORY_BYTES: u64 = 1 << 30;

impl Default for Policy {
    fn default() -> Self {
        Self {
            preopens: Vec::new(),
            env: Vec::new(),
            memory_bytes: 64 << 20,
            cpu_ms: 2_000,
            fuel: None,
            scratch: false,
            wall_ms: 10_000,
            output_bytes: 64 << 10,
            stdio_bytes: 64 << 10,
        }
    }
}

/// Why [`Policy::checked`] refused a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `memory_bytes` (the value given) is above [`MAX_MEMORY_BYTES`].
    #[error("memory_bytes: {0} is more than the most a tool may have ({MAX_MEMORY_BYTES})")]
    TooMuchMemory(u64),
    /// A limit that must be positive is 0.
    #[error("{field}: must be more than 0")]
    Zero {
        /// The policy's key for the limit, such as `cpu_ms`.
        field: &'static str,
    },
    /// A preopen's host directory cannot be granted: it does not exist, is not a directory,
    /// or is the filesystem's root.
    #[error("preopens[{index}]: host directory {path}: {message}")]
    BadPreopen {
        /// The preopen's position in `preopens`, from 0.
        index: usize,
        /// The host path as configured.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A preopen's guest path is not absolute, or is `/tmp` while `scratch` is on.
    #[error(
        "preopens[{index}]: the guest path must be absolute, like /data, and not /tmp when scratch is on (found {guest:?})"
    )]
    BadGuestPath {
        /// The preopen's position in `preopens`, from 0.
        index: usize,
        /// The guest path as configured (with a note when scratch has `/tmp`).
        guest: String,
    },
}

impl Policy {
    /// Checks the numbers and resolves each preopen to a canonical, existing directory (the
    /// guest sees only what is below it; a symlink in the configured path is resolved here,
    /// once, by us).
    pub fn checked(mut self) -> Result<Policy, PolicyError> {
        if self.memory_bytes > MAX_MEMORY_BYTES {
            return Err(PolicyError::TooMuchMemory(self.memory_bytes));
        }
        for (field, v) in [
            ("memory_bytes", self.memory_bytes),
            ("cpu_ms", self.cpu_ms),
            ("wall_ms", self.wall_ms),
            ("output_bytes", self.output_bytes as u64),
            ("fuel", self.fuel.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(PolicyError::Zero { field });
            }
        }
        for (index, p) in self.preopens.iter_mut().enumerate() {
            let bad = |message: String| PolicyError::BadPreopen {
                index,
                path: p.host.display().to_string(),
                message,
            };
            let canonical = std::fs::canonicalize(&p.host).map_err(|e| bad(e.to_string()))?;
            if !canonical.is_dir() {
                return Err(bad("not a directory".into()));
            }
            if canonical.parent().is_none() {
                return Err(bad("the whole filesystem cannot be granted".into()));
            }
            if !p.guest.starts_with('/') {
                return Err(PolicyError::BadGuestPath {
                    index,
                    guest: p.guest.clone(),
                });
            }
            if self.scratch && p.guest.trim_end_matches('/') == "/tmp" {
                return Err(PolicyError::BadGuestPath {
                    index,
                    guest: format!("{} (taken by the scratch directory)", p.guest),
                });
            }
            p.host = canonical;
        }
        Ok(self)
    }

    /// `wall_ms` as a duration.
    pub fn wall(&self) -> Duration {
        Duration::from_millis(self.wall_ms)
    }

    /// One line for `agent tools`.
    pub fn summary(&self) -> String {
        let files = if self.preopens.is_empty() {
            "no files".to_string()
        } else {
            self.preopens
                .iter()
                .map(|p| {
                    format!(
                        "{} as {} ({})",
                        p.host.display(),
                        p.guest,
                        if p.mode == Mode::ReadOnly {
                            "read-only"
                        } else {
                            "read-write"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let files = if self.scratch {
            format!("{files}; scratch /tmp per call")
        } else {
            files
        };
        let env = if self.env.is_empty() {
            "no environment".to_string()
        } else {
            format!("env {}", self.env.join(", "))
        };
        let cpu = match self.fuel {
            Some(f) => format!("fuel {f}"),
            None => format!("cpu {} ms", self.cpu_ms),
        };
        format!(
            "{files}; {env}; no network; memory {} MiB, {cpu}, wall {} ms, output {} KiB",
            self.memory_bytes >> 20,
            self.wall_ms,
            self.output_bytes >> 10
        )
    }
}
