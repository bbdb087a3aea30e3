//! The set of tools one run can call, and dispatch with argument validation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::{Tool, ToolOutput, ToolSpec, validate_arguments};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error("two tools are named `{0}`")]
    Duplicate(String),
}

/// Tools by name. Names are unique: sources namespace their tools (`server__tool`) so that a
/// collision is a configuration error, reported at start-up rather than a silent shadowing.
#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let name = tool.spec().name.clone();
        if self.tools.contains_key(&name) {
            return Err(RegistryError::Duplicate(name));
        }
        self.tools.insert(name, tool);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec().clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Validates the arguments and calls the tool. Every failure (unknown tool, arguments that
    /// violate the schema) becomes a tool error the model can read and correct.
    pub async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        let Some(tool) = self.tools.get(name) else {
            let known: Vec<&str> = self.names().collect();
            return ToolOutput::error(format!(
                "unknown tool `{name}`; available tools: {}",
                known.join(", ")
            ));
        };
        if let Err(e) = validate_arguments(&tool.spec().parameters, &arguments) {
            return ToolOutput::error(format!("tool `{name}`: {e}"));
        }
        tool.call(arguments).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::Calculator;
    use serde_json::json;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The built-in tools never await anything, so polling once with a no-op waker is enough.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("built-in tool future was pending"),
        }
    }

    #[test]
    fn dispatch_validates_and_reports() {
        let mut reg = ToolRegistry::new();
        reg.register(Arc::new(Calculator::new())).unwrap();
        assert_eq!(
            reg.register(Arc::new(Calculator::new())),
            Err(RegistryError::Duplicate("calculator".into()))
        );
        assert_eq!(
            block_on(reg.call("calculator", json!({"expression": "2+3*4"}))),
            ToolOutput { content: "2+3*4 = 14".into(), structured: Some(json!({"result": 14.0})), is_error: false }
        );
        assert_eq!(
            block_on(reg.call("nope", json!({}))),
            ToolOutput::error("unknown tool `nope`; available tools: calculator")
        );
        assert_eq!(
            block_on(reg.call("calculator", json!({"expr": "1"}))),
            ToolOutput::error(
                "tool `calculator`: arguments do not match the schema at /: \"expression\" is a required property"
            )
        );
    }
}
