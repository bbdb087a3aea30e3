//! `tools:` entries: where the tools offered to the model come from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use super::check::{Checked, FieldError, Seg, item, wrong_type};

/// One entry of `tools:`.
///
/// Written as a string so the list reads naturally in YAML
/// (`tools: [builtin:calculator, wasm:text]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ToolSource {
    /// `builtin`: every built-in tool.
    AllBuiltins,
    /// `builtin:NAME`: one built-in tool. The name is checked for shape here;
    /// whether such a tool exists is up to the tool registry.
    Builtin(String),
    /// `wasm:NAME` (a bundled wasm tool) or `wasm:PATH.wasm` (a component file, relative to
    /// the task file): tools sandboxed in wasmtime, under the policy `wasm_policy.NAME`
    /// (NAME being the file's stem for a path).
    Wasm(String),
}

impl ToolSource {
    /// The name a wasm source's tools are prefixed with (`text` for `wasm:text` and for
    /// `wasm:tools/text.wasm`).
    pub fn wasm_name(&self) -> Option<String> {
        match self {
            ToolSource::Wasm(spec) => {
                let stem = std::path::Path::new(spec)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Some(stem)
            }
            _ => None,
        }
    }
}

/// The forms users can write, for error messages.
const SUPPORTED: &str = "supported forms are `builtin` (every built-in tool), \
     `builtin:NAME` (one built-in tool), `wasm:NAME` (a bundled wasm tool) and \
     `wasm:PATH.wasm` (a WebAssembly component); MCP servers are configured under `mcp_servers:`";

impl FromStr for ToolSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "builtin" {
            return Ok(ToolSource::AllBuiltins);
        }
        if let Some(spec) = text.strip_prefix("wasm:") {
            let stem = std::path::Path::new(spec)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            return if spec.ends_with(".wasm") && is_tool_name(&stem.replace('-', "_")) {
                Ok(ToolSource::Wasm(spec.to_owned()))
            } else if is_tool_name(spec) {
                Ok(ToolSource::Wasm(spec.to_owned()))
            } else {
                Err(format!(
                    "invalid wasm tool {spec:?}: a bundled tool's name (a-z, 0-9, _) or a path ending in .wasm whose file name is such a name"
                ))
            };
        }
        match text.strip_prefix("builtin:") {
            Some(name) if is_tool_name(name) => Ok(ToolSource::Builtin(name.to_owned())),
            Some(name) => Err(format!(
                "invalid built-in tool name {name:?}: a name is one or more of a-z, 0-9 and _"
            )),
            None => Err(format!("unsupported tool source {text:?}: {SUPPORTED}")),
        }
    }
}

/// `[a-z0-9_]+`, the shape of built-in tool names.
fn is_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl fmt::Display for ToolSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolSource::AllBuiltins => f.write_str("builtin"),
            ToolSource::Builtin(name) => write!(f, "builtin:{name}"),
            ToolSource::Wasm(spec) => write!(f, "wasm:{spec}"),
        }
    }
}

impl TryFrom<String> for ToolSource {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<ToolSource> for String {
    fn from(source: ToolSource) -> String {
        source.to_string()
    }
}

/// `tools:`: a list of tool-source strings.
pub(crate) fn check_tools(value: &Value, path: &[Seg]) -> Checked<Vec<ToolSource>> {
    let Value::Sequence(items) = value else {
        return Err(wrong_type(
            path,
            "a list of tool sources such as [builtin]",
            value,
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let path = item(path, index);
            match entry {
                Value::String(text) => text.parse().map_err(|e: String| FieldError::new(&path, e)),
                other => Err(wrong_type(
                    &path,
                    "a tool source such as builtin or builtin:NAME",
                    other,
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_forms() {
        assert_eq!("builtin".parse(), Ok(ToolSource::AllBuiltins));
        assert_eq!(
            "builtin:read_file2".parse(),
            Ok(ToolSource::Builtin("read_file2".into()))
        );
        assert_eq!(ToolSource::Builtin("x".into()).to_string(), "builtin:x");
        assert_eq!(ToolSource::AllBuiltins.to_string(), "builtin");
    }

    #[test]
    fn rejects_future_and_malformed_sources() {
        for text in ["mcp:github", "Builtin", "builtins", ""] {
            let err = text.parse::<ToolSource>().unwrap_err();
            assert!(
                err.contains("MCP servers are configured under `mcp_servers:`"),
                "{err}"
            );
        }
        assert_eq!("wasm:text".parse(), Ok(ToolSource::Wasm("text".into())));
        assert_eq!(
            "wasm:tools/my-tool.wasm"
                .parse::<ToolSource>()
                .map(|s| s.wasm_name()),
            Ok(Some("my-tool".into()))
        );
        assert!(
            "wasm:Text"
                .parse::<ToolSource>()
                .unwrap_err()
                .starts_with("invalid wasm tool")
        );
        for text in ["builtin:", "builtin:Read", "builtin:a-b"] {
            let err = text.parse::<ToolSource>().unwrap_err();
            assert!(err.starts_with("invalid built-in tool name"), "{err}");
        }
    }
}
