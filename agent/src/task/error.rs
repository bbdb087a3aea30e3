//! Errors from loading a task file.
//!
//! Every error renders as exactly one line, `FILE:LINE: KEY: MESSAGE`, with the
//! parts that do not apply left out (`FILE: MESSAGE` for a missing file, no
//! `KEY` for a YAML syntax error). One line per error is deliberate: editors and
//! terminals turn `FILE:LINE:` into a jump target, and the CLI prints the error
//! as is before exiting with status 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// Why a task file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read task file: {source}", .path.display())]
    Read {
        /// The task file.
        path: PathBuf,
        /// The reading error.
        #[source]
        source: std::io::Error,
    },

    /// The first line is `---` but no later line closes the front matter.
    #[error(
        "{}:1: front matter is not closed: add a line containing only `---` after it",
        .path.display()
    )]
    UnclosedFrontMatter {
        /// The task file.
        path: PathBuf,
    },

    /// The front matter is not well-formed YAML.
    #[error("{}: invalid YAML in front matter: {message}", Location(.path, *.line))]
    Yaml {
        /// The task file.
        path: PathBuf,
        /// 1-based line in the whole task file, when the parser knows it.
        line: Option<usize>,
        /// The YAML parser's message, without its own positions.
        message: String,
    },

    /// The front matter is YAML but a key or value is not acceptable.
    #[error("{}: {}", Location(.path, *.line), Keyed(.key, .message))]
    Invalid {
        /// The task file.
        path: PathBuf,
        /// 1-based line in the whole task file.
        line: Option<usize>,
        /// Dotted key path such as `sampling.temperature`; `None` when the
        /// problem is the front matter as a whole.
        key: Option<String>,
        /// What is wrong with the key or value.
        message: String,
    },

    /// Nothing but whitespace after the front matter (or in the whole file).
    #[error("{}: no instructions: {reason}", .path.display())]
    NoInstructions {
        /// The task file.
        path: PathBuf,
        /// Why there are none (an empty file, or nothing after the front matter).
        reason: &'static str,
    },
}

impl TaskError {
    /// The process exit status for this error. Every task-file error is a
    /// usage error (the user must fix the file), so all of them map to 2, the
    /// same status clap uses for bad command lines.
    pub fn exit_code(&self) -> i32 {
        2
    }

    /// The task file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TaskError::Read { path, .. }
            | TaskError::UnclosedFrontMatter { path }
            | TaskError::Yaml { path, .. }
            | TaskError::Invalid { path, .. }
            | TaskError::NoInstructions { path, .. } => path,
        }
    }

    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            TaskError::UnclosedFrontMatter { .. } => Some(1),
            TaskError::Yaml { line, .. } | TaskError::Invalid { line, .. } => *line,
            TaskError::Read { .. } | TaskError::NoInstructions { .. } => None,
        }
    }

    /// The dotted key path the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            TaskError::Invalid { key, .. } => key.as_deref(),
            _ => None,
        }
    }
}

/// `FILE:LINE` or `FILE`.
struct Location<'a>(&'a Path, Option<usize>);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(line) => write!(f, "{}:{line}", self.0.display()),
            None => write!(f, "{}", self.0.display()),
        }
    }
}

/// `KEY: MESSAGE` or `MESSAGE`.
struct Keyed<'a>(&'a Option<String>, &'a str);

impl fmt::Display for Keyed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, "{key}: {}", self.1),
            None => f.write_str(self.1),
        }
    }
}
