//! The set of tools one run can call, and dispatch with argument validation.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::{CallContext, SchemaCache, Tool, ToolOutput, ToolSpec, argument_error, unknown_tool};

/// Why a tool could not be added to a [`ToolRegistry`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    /// A fixed tool of this name is registered already.
    #[error("two tools are named `{0}`")]
    Duplicate(String),
}

/// A source whose tools may change during a run (an MCP server that starts late, restarts, or
/// announces `notifications/tools/list_changed`). Asked afresh at every step.
pub trait ToolProvider: Send + Sync {
    /// The tools the source offers now.
    fn tools(&self) -> Vec<Arc<dyn Tool>>;
}

/// Tools by name. Names are unique: sources namespace their tools (`server__tool`) so that a
/// collision is a configuration error, reported at start-up rather than a silent shadowing.
#[derive(Default, Clone)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    providers: Vec<Arc<dyn ToolProvider>>,
    /// Shared by clones: a run's registry and the copies its steps take.
    schemas: Arc<SchemaCache>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a fixed tool.
    ///
    /// # Errors
    /// [`RegistryError::Duplicate`] when a fixed tool of the same name is registered already.
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), RegistryError> {
        let name = tool.spec().name.clone();
        if self.tools.contains_key(&name) {
            return Err(RegistryError::Duplicate(name));
        }
        self.tools.insert(name, tool);
        Ok(())
    }

    /// Adds `tool`, or puts it in the place of the fixed tool of the same name (a run's own
    /// `final_answer`, shaped by its output schema).
    pub fn replace(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name.clone(), tool);
    }

    /// Adds a source of changing tools. Its names are namespaced (`server__tool`, server names
    /// without `__`), so they cannot shadow fixed tools, whose names never contain `__`.
    pub fn register_provider(&mut self, provider: Arc<dyn ToolProvider>) {
        self.providers.push(provider);
    }

    /// Every tool as of now, by name.
    pub fn current(&self) -> BTreeMap<String, Arc<dyn Tool>> {
        let mut all = self.tools.clone();
        for p in &self.providers {
            for t in p.tools() {
                all.entry(t.spec().name.clone()).or_insert(t);
            }
        }
        all
    }

    /// The tool called `name`: the fixed one if any, else the first provider's of that name.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned().or_else(|| {
            self.providers
                .iter()
                .flat_map(|p| p.tools())
                .find(|t| t.spec().name == name)
        })
    }

    /// The names of every tool as of now, sorted.
    pub fn names(&self) -> Vec<String> {
        self.current().into_keys().collect()
    }

    /// The specs of every tool as of now, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.current().values().map(|t| t.spec().clone()).collect()
    }

    /// True when neither the fixed tools nor the providers offer any tool now.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    /// The tool called `name`, when it exists and `arguments` match its schema; otherwise
    /// the tool error the model reads (as [`ToolRegistry::call`] would return it).
    ///
    /// # Errors
    /// The unknown tool or the schema violation, as a [`ToolOutput::error`].
    pub fn checked(&self, name: &str, arguments: &Value) -> Result<Arc<dyn Tool>, Box<ToolOutput>> {
        let Some(tool) = self.get(name) else {
            return Err(Box::new(ToolOutput::error(unknown_tool(
                name,
                &self.names(),
            ))));
        };
        if let Err(e) = self
            .schemas
            .validate(name, &tool.spec().parameters, arguments)
        {
            return Err(Box::new(ToolOutput::error(argument_error(name, &e))));
        }
        Ok(tool)
    }

    /// Validates the arguments and calls the tool. Every failure (unknown tool, arguments that
    /// violate the schema) becomes a tool error the model can read and correct.
    pub async fn call(&self, name: &str, arguments: Value, cx: CallContext) -> ToolOutput {
        match self.checked(name, &arguments) {
            Ok(tool) => tool.call(arguments, cx).await,
            Err(e) => *e,
        }
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
            block_on(reg.call(
                "calculator",
                json!({"expression": "2+3*4"}),
                CallContext::default()
            )),
            ToolOutput {
                content: "2+3*4 = 14".into(),
                structured: Some(json!({"result": 14.0})),
                is_error: false,
                attachments: Vec::new()
            }
        );
        assert_eq!(
            block_on(reg.call("nope", json!({}), CallContext::default())),
            ToolOutput::error("unknown tool `nope`; available tools: calculator")
        );
        // One schema compiled, however many calls.
        assert_eq!(reg.schemas.len(), 1);
        assert_eq!(
            block_on(reg.call("calculator", json!({"expr": "1"}), CallContext::default())),
            ToolOutput::error(
                "tool `calculator`: arguments do not match the schema at /: \"expression\" is a required property"
            )
        );
    }
}
