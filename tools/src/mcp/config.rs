//! MCP server configuration in the `mcpServers` shape Claude Desktop, Cursor and VS Code use:
//! `{"mcpServers": {"fs": {"command": "npx", "args": [...], "env": {...}}, "web": {"url": "...",
//! "headers": {...}}}}`, plus our per-server options (`enabled_tools`, `disabled_tools`,
//! `startup_timeout`, `call_timeout`, `required`). Errors name the source and the key path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// How to reach a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A child process speaking JSON-RPC over stdin/stdout.
    Stdio {
        /// The program to run.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Variables set for it on top of the environment it inherits.
        env: BTreeMap<String, String>,
        /// The directory it runs in; ours when `None`.
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP.
    Http {
        /// The endpoint, `http://` or `https://`.
        url: String,
        /// Headers sent with every request (an `Authorization` token, say).
        headers: BTreeMap<String, String>,
    },
}

/// One server's configuration, as read from its entry in `mcpServers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The key in `mcpServers`; the model sees the server's tools as `NAME__TOOL`.
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Only these tools (all when `None`).
    pub enabled_tools: Option<Vec<String>>,
    /// Tools (by the server's own names) never offered, whatever `enabled_tools` says.
    pub disabled_tools: Vec<String>,
    /// Most time from starting the server to its tool list, on every start and restart.
    pub startup_timeout: Duration,
    /// Idle time allowed for a call; progress notifications re-arm it.
    pub call_timeout: Duration,
    /// Most time a call may take, progress or not.
    pub call_total_timeout: Duration,
    /// Most characters of a result the model reads; the rest is cut with a note.
    pub max_output: usize,
    /// The run fails when this server cannot start (else it goes on without it, warned).
    pub required: bool,
    /// Directories offered to the server as MCP `roots`. None by default: we then do not
    /// declare the roots capability at all, and a server such as server-filesystem serves the
    /// directories of its own command line, as it does under Claude Desktop or Cursor.
    /// Relative paths are resolved against the configuring file's directory
    /// ([`McpConfig::resolve_roots`]).
    pub roots: Vec<PathBuf>,
}

/// [`ServerConfig::startup_timeout`] when the configuration gives none.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// [`ServerConfig::call_timeout`] when the configuration gives none.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// [`ServerConfig::call_total_timeout`] when the configuration gives none.
pub const DEFAULT_CALL_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
/// [`ServerConfig::max_output`] when the configuration gives none: 16 Mi characters, a bound
/// on memory only. What the model reads of a long result is the run's business (the agent
/// cuts it to fit the prompt and keeps the whole for paging), so nothing is thrown away here.
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;

/// Every configured server, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct McpConfig {
    /// The servers by name; disabled ones (`"disabled": true`) are left out.
    pub servers: BTreeMap<String, ServerConfig>,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A key of a mapping.
    Key(String),
    /// A position in a list, from 0.
    Index(usize),
}

/// A configuration that cannot be used: where, and why. Displayed as `SOURCE: KEY: MESSAGE`
/// (`SOURCE: MESSAGE` when the path is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the configuration came from (a file, a task).
    pub source_name: String,
    /// The key path of the offending value (empty for the document as a whole).
    pub path: Vec<PathSeg>,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    /// The key path as written: `mcpServers.fs.args[1]`.
    pub fn key(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                PathSeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                PathSeg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.key() {
            k if k.is_empty() => write!(f, "{}: {}", self.source_name, self.message),
            k => write!(f, "{}: {k}: {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Our keys, and keys other clients write that we accept and ignore (their meaning is theirs).
const KEYS: [&str; 14] = [
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "headers",
    "enabled_tools",
    "disabled_tools",
    "startup_timeout",
    "call_timeout",
    "call_total_timeout",
    "max_output",
    "required",
    "roots",
];
const FOREIGN_KEYS: [&str; 6] = [
    "type",
    "disabled",
    "autoApprove",
    "alwaysAllow",
    "description",
    "transportType",
];

struct Cx<'a> {
    source: &'a str,
}

impl Cx<'_> {
    fn err(&self, path: &[PathSeg], message: impl Into<String>) -> ConfigError {
        ConfigError {
            source_name: self.source.to_string(),
            path: path.to_vec(),
            message: message.into(),
        }
    }

    fn string(&self, v: &Value, path: &[PathSeg], what: &str) -> Result<String, ConfigError> {
        match v {
            Value::String(s) if !s.is_empty() => Ok(s.clone()),
            other => Err(self.err(path, format!("expected {what}; found {}", describe(other)))),
        }
    }

    fn strings(&self, v: &Value, path: &[PathSeg], what: &str) -> Result<Vec<String>, ConfigError> {
        let Value::Array(items) = v else {
            return Err(self.err(
                path,
                format!("expected a list of {what}; found {}", describe(v)),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, x)| self.string(x, &child(path, PathSeg::Index(i)), what))
            .collect()
    }

    fn string_map(
        &self,
        v: &Value,
        path: &[PathSeg],
    ) -> Result<BTreeMap<String, String>, ConfigError> {
        let Value::Object(m) = v else {
            return Err(self.err(
                path,
                format!(
                    "expected a mapping of names to strings; found {}",
                    describe(v)
                ),
            ));
        };
        m.iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(self.err(
                    &child(path, PathSeg::Key(k.clone())),
                    format!("expected a string; found {}", describe(other)),
                )),
            })
            .collect()
    }

    /// Seconds as a number, or a string with a unit: `500ms`, `30s`, `2m`.
    fn duration(&self, v: &Value, path: &[PathSeg]) -> Result<Duration, ConfigError> {
        const WHAT: &str = "a duration: seconds, or a string such as \"500ms\", \"30s\", \"2m\"";
        let secs = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => {
                let s = s.trim();
                let (num, scale) = if let Some(x) = s.strip_suffix("ms") {
                    (x, 0.001)
                } else if let Some(x) = s.strip_suffix('s') {
                    (x, 1.0)
                } else if let Some(x) = s.strip_suffix('m') {
                    (x, 60.0)
                } else {
                    (s, 1.0)
                };
                num.trim().parse::<f64>().ok().map(|x| x * scale)
            }
            _ => None,
        };
        match secs {
            Some(s) if s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            Some(_) => Err(self.err(path, "must be more than 0 and at most a day")),
            None => Err(self.err(path, format!("expected {WHAT}; found {}", describe(v)))),
        }
    }

    fn server(
        &self,
        name: &str,
        v: &Value,
        path: &[PathSeg],
    ) -> Result<Option<ServerConfig>, ConfigError> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !name.contains("__");
        if !valid {
            return Err(self.err(path, "a server name is letters, digits, `-` and `_` (not `__`, which separates server and tool in tool names)"));
        }
        let Value::Object(m) = v else {
            return Err(self.err(
                path,
                format!(
                    "expected a mapping with `command` or `url`; found {}",
                    describe(v)
                ),
            ));
        };
        for k in m.keys() {
            if !KEYS.contains(&k.as_str()) && !FOREIGN_KEYS.contains(&k.as_str()) {
                return Err(self.err(
                    &child(path, PathSeg::Key(k.clone())),
                    format!("unknown key; allowed keys: {}", KEYS.join(", ")),
                ));
            }
        }
        if m.get("disabled") == Some(&Value::Bool(true)) {
            return Ok(None);
        }
        let at = |k: &str| child(path, PathSeg::Key(k.to_string()));
        if let Some(t) = m
            .get("type")
            .or_else(|| m.get("transportType"))
            .and_then(Value::as_str)
            && t == "sse"
        {
            return Err(self.err(
                &at("type"),
                "the SSE transport is not supported; use streamable HTTP (`url`)",
            ));
        }
        let transport = match (m.get("command"), m.get("url")) {
            (Some(_), Some(_)) => {
                return Err(self.err(
                    path,
                    "give either `command` (stdio) or `url` (streamable HTTP), not both",
                ));
            }
            (None, None) => {
                return Err(self.err(path, "needs `command` (stdio) or `url` (streamable HTTP)"));
            }
            (Some(c), None) => {
                if let Some(k) = ["headers"].into_iter().find(|k| m.contains_key(*k)) {
                    return Err(self.err(&at(k), "only for `url` servers"));
                }
                Transport::Stdio {
                    command: self.string(c, &at("command"), "a command")?,
                    args: m
                        .get("args")
                        .map(|a| self.strings(a, &at("args"), "strings"))
                        .transpose()?
                        .unwrap_or_default(),
                    env: m
                        .get("env")
                        .map(|e| self.string_map(e, &at("env")))
                        .transpose()?
                        .unwrap_or_default(),
                    cwd: m
                        .get("cwd")
                        .map(|d| self.string(d, &at("cwd"), "a directory"))
                        .transpose()?
                        .map(PathBuf::from),
                }
            }
            (None, Some(u)) => {
                if let Some(k) = ["args", "env", "cwd"]
                    .into_iter()
                    .find(|k| m.contains_key(*k))
                {
                    return Err(self.err(&at(k), "only for `command` servers"));
                }
                let url = self.string(u, &at("url"), "an http(s) URL")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(self.err(
                        &at("url"),
                        format!("expected an http(s) URL; found {url:?}"),
                    ));
                }
                Transport::Http {
                    url,
                    headers: m
                        .get("headers")
                        .map(|h| self.string_map(h, &at("headers")))
                        .transpose()?
                        .unwrap_or_default(),
                }
            }
        };
        let enabled_tools = m
            .get("enabled_tools")
            .map(|t| self.strings(t, &at("enabled_tools"), "tool names"))
            .transpose()?;
        let disabled_tools = m
            .get("disabled_tools")
            .map(|t| self.strings(t, &at("disabled_tools"), "tool names"))
            .transpose()?
            .unwrap_or_default();
        let required = match m.get("required") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(self.err(
                    &at("required"),
                    format!("expected true or false; found {}", describe(other)),
                ));
            }
        };
        Ok(Some(ServerConfig {
            name: name.to_string(),
            transport,
            enabled_tools,
            disabled_tools,
            startup_timeout: m
                .get("startup_timeout")
                .map(|d| self.duration(d, &at("startup_timeout")))
                .transpose()?
                .unwrap_or(DEFAULT_STARTUP_TIMEOUT),
            call_timeout: m
                .get("call_timeout")
                .map(|d| self.duration(d, &at("call_timeout")))
                .transpose()?
                .unwrap_or(DEFAULT_CALL_TIMEOUT),
            call_total_timeout: m
                .get("call_total_timeout")
                .map(|d| self.duration(d, &at("call_total_timeout")))
                .transpose()?
                .unwrap_or(DEFAULT_CALL_TOTAL_TIMEOUT),
            max_output: match m.get("max_output") {
                None => DEFAULT_MAX_OUTPUT,
                Some(v) => match v.as_u64() {
                    Some(n) if n >= 100 => n as usize,
                    _ => {
                        return Err(self.err(
                            &at("max_output"),
                            format!(
                                "expected a number of characters, at least 100; found {}",
                                describe(v)
                            ),
                        ));
                    }
                },
            },
            required,
            roots: m
                .get("roots")
                .map(|r| self.strings(r, &at("roots"), "directories"))
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
        }))
    }
}

fn child(path: &[PathSeg], seg: PathSeg) -> Vec<PathSeg> {
    let mut p = path.to_vec();
    p.push(seg);
    p
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

impl McpConfig {
    /// A config file: a JSON object whose `mcpServers` holds the servers (other top-level keys,
    /// such as Claude Desktop's own settings, are left alone).
    pub fn from_json(text: &str, source: &str) -> Result<Self, ConfigError> {
        let cx = Cx { source };
        let v: Value = serde_json::from_str(text).map_err(|e| {
            cx.err(
                &[],
                format!(
                    "not valid JSON at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let Value::Object(top) = &v else {
            return Err(cx.err(
                &[],
                format!(
                    "expected a JSON object with `mcpServers`; found {}",
                    describe(&v)
                ),
            ));
        };
        let Some(servers) = top.get("mcpServers") else {
            return Err(cx.err(&[], "no `mcpServers` key"));
        };
        Self::from_servers(servers, source, &[PathSeg::Key("mcpServers".into())])
    }

    /// The servers mapping itself (a task's `mcp_servers:`), found at `path` in `source`.
    pub fn from_servers(
        servers: &Value,
        source: &str,
        path: &[PathSeg],
    ) -> Result<Self, ConfigError> {
        let cx = Cx { source };
        let Value::Object(m) = servers else {
            return Err(cx.err(
                path,
                format!(
                    "expected a mapping of server names to servers; found {}",
                    describe(servers)
                ),
            ));
        };
        let mut out = McpConfig::default();
        for (name, v) in m as &Map<String, Value> {
            if let Some(s) = cx.server(name, v, &child(path, PathSeg::Key(name.clone())))? {
                out.servers.insert(name.clone(), s);
            }
        }
        Ok(out)
    }

    /// Resolves relative `roots` against `base` (the directory of the file that configured
    /// them) and checks that each is a directory; errors name `source` and the key, under
    /// `prefix` (the path of the servers mapping in `source`).
    pub fn resolve_roots(
        mut self,
        base: &std::path::Path,
        source: &str,
        prefix: &[PathSeg],
    ) -> Result<McpConfig, ConfigError> {
        for (name, server) in &mut self.servers {
            for (i, root) in server.roots.iter_mut().enumerate() {
                let full = base.join(&*root);
                match std::fs::canonicalize(&full) {
                    Ok(dir) if dir.is_dir() => *root = dir,
                    _ => {
                        let mut path = prefix.to_vec();
                        path.extend([
                            PathSeg::Key(name.clone()),
                            PathSeg::Key("roots".into()),
                            PathSeg::Index(i),
                        ]);
                        return Err(ConfigError {
                            source_name: source.to_string(),
                            path,
                            message: format!("{} is not a directory", full.display()),
                        });
                    }
                }
            }
        }
        Ok(self)
    }

    /// `over`'s servers replace same-named ones (user default < `--mcp-config` < task).
    pub fn merge(mut self, over: McpConfig) -> McpConfig {
        self.servers.extend(over.servers);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        McpConfig::from_json(text, "mcp.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn both_transports_and_options() {
        let text = r#"{"globalShortcut": "x", "mcpServers": {
            "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "env": {"A": "1"},
                   "disabled_tools": ["write_file"], "startup_timeout": "2m", "call_timeout": 5, "call_total_timeout": "1m", "max_output": 2000, "required": true, "autoApprove": []},
            "web": {"type": "http", "url": "http://127.0.0.1:3001/mcp", "headers": {"Authorization": "Bearer t"}, "enabled_tools": ["echo"]},
            "off": {"command": "x", "disabled": true}}}"#;
        let c = McpConfig::from_json(text, "mcp.json").unwrap();
        let fs = ServerConfig {
            name: "fs".into(),
            transport: Transport::Stdio {
                command: "npx".into(),
                args: vec![
                    "-y".into(),
                    "@modelcontextprotocol/server-filesystem".into(),
                    "/tmp".into(),
                ],
                env: [("A".to_string(), "1".to_string())].into(),
                cwd: None,
            },
            enabled_tools: None,
            disabled_tools: vec!["write_file".into()],
            startup_timeout: Duration::from_secs(120),
            call_timeout: Duration::from_secs(5),
            call_total_timeout: Duration::from_secs(60),
            max_output: 2000,
            required: true,
            roots: vec![],
        };
        let web = ServerConfig {
            name: "web".into(),
            transport: Transport::Http {
                url: "http://127.0.0.1:3001/mcp".into(),
                headers: [("Authorization".to_string(), "Bearer t".to_string())].into(),
            },
            enabled_tools: Some(vec!["echo".into()]),
            disabled_tools: vec![],
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            call_total_timeout: DEFAULT_CALL_TOTAL_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
            required: false,
            roots: vec![],
        };
        assert_eq!(
            c,
            McpConfig {
                servers: [("fs".to_string(), fs), ("web".to_string(), web)].into()
            }
        );
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            err(r#"{"mcpServers": {"fs": {"command": "npx", "args": ["-y", 3]}}}"#),
            "mcp.json: mcpServers.fs.args[1]: expected strings; found the number 3"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"fs": {"comand": "npx"}}}"#),
            "mcp.json: mcpServers.fs.comand: unknown key; allowed keys: command, args, env, cwd, url, headers, enabled_tools, disabled_tools, startup_timeout, call_timeout, call_total_timeout, max_output, required, roots"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"command": "x", "max_output": 5}}}"#),
            "mcp.json: mcpServers.w.max_output: expected a number of characters, at least 100; found the number 5"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"a__b": {"command": "x"}}}"#),
            "mcp.json: mcpServers.a__b: a server name is letters, digits, `-` and `_` (not `__`, which separates server and tool in tool names)"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"url": "ftp://x"}}}"#),
            "mcp.json: mcpServers.w.url: expected an http(s) URL; found \"ftp://x\""
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"url": "http://x", "command": "y"}}}"#),
            "mcp.json: mcpServers.w: give either `command` (stdio) or `url` (streamable HTTP), not both"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"type": "sse", "url": "http://x"}}}"#),
            "mcp.json: mcpServers.w.type: the SSE transport is not supported; use streamable HTTP (`url`)"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"command": "x", "call_timeout": "soon"}}}"#),
            "mcp.json: mcpServers.w.call_timeout: expected a duration: seconds, or a string such as \"500ms\", \"30s\", \"2m\"; found the string \"soon\""
        );
        assert_eq!(
            err(r#"{"mcpServers": {"w": {"command": "x", "env": {"A": 1}}}}"#),
            "mcp.json: mcpServers.w.env.A: expected a string; found the number 1"
        );
        assert_eq!(err(r#"{"servers": {}}"#), "mcp.json: no `mcpServers` key");
        assert!(
            err("{").starts_with("mcp.json: not valid JSON at line 1, column 1"),
            "{}",
            err("{")
        );
    }

    #[test]
    fn later_sources_win() {
        let a = McpConfig::from_json(
            r#"{"mcpServers": {"x": {"command": "a"}, "y": {"command": "b"}}}"#,
            "a",
        )
        .unwrap();
        let b = McpConfig::from_json(r#"{"mcpServers": {"x": {"command": "c"}}}"#, "b").unwrap();
        let m = a.merge(b);
        let commands: Vec<String> = m
            .servers
            .values()
            .map(|s| match &s.transport {
                Transport::Stdio { command, .. } => command.clone(),
                Transport::Http { url, .. } => url.clone(),
            })
            .collect();
        assert_eq!(commands, vec!["c".to_string(), "b".to_string()]);
    }
}
