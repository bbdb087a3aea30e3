//! Builds the tool registry a task asks for.

use agent_tools::ToolRegistry;
use agent_tools::builtin::{self, FINAL_ANSWER};

use crate::task::{OutputSpec, ToolSource};

#[derive(Debug, thiserror::Error)]
pub enum ToolsetError {
    #[error("tools: unknown built-in tool `{name}` (available: {})", builtin::NAMES.join(", "))]
    UnknownBuiltin { name: String },
    #[error("tools: {0}")]
    Registry(#[from] agent_tools::RegistryError),
}

/// The registry for `sources`; `final_answer` is always present (shaped by the output schema),
/// because it is how a run ends with a checked answer.
pub fn build(sources: &[ToolSource], output: &OutputSpec) -> Result<ToolRegistry, ToolsetError> {
    let schema = match output {
        OutputSpec::Text => None,
        OutputSpec::Schema(s) => Some(s),
    };
    let mut names: Vec<String> = Vec::new();
    for s in sources {
        match s {
            ToolSource::AllBuiltins => names.extend(builtin::NAMES.iter().map(|n| n.to_string())),
            ToolSource::Builtin(n) => names.push(n.clone()),
        }
    }
    names.push(FINAL_ANSWER.into());
    names.sort();
    names.dedup();
    let mut reg = ToolRegistry::new();
    for name in names {
        let tool = builtin::by_name(&name, schema).ok_or(ToolsetError::UnknownBuiltin { name })?;
        reg.register(tool)?;
    }
    Ok(reg)
}
