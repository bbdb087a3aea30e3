//! Tools written in Rust that ship with the runtime.

mod calculator;
mod final_answer;

pub use calculator::{Calculator, evaluate};
pub use final_answer::{FINAL_ANSWER, FinalAnswer};

use std::sync::Arc;

use crate::Tool;

/// Names of the built-in tools a task can enable with `builtin:NAME` (final_answer is always
/// present: it is how a run ends with a checked answer).
pub const NAMES: &[&str] = &["calculator", FINAL_ANSWER];

/// Builds a built-in tool by name; `output_schema` shapes `final_answer`.
pub fn by_name(name: &str, output_schema: Option<&serde_json::Value>) -> Option<Arc<dyn Tool>> {
    match name {
        "calculator" => Some(Arc::new(Calculator::new())),
        FINAL_ANSWER => Some(Arc::new(FinalAnswer::new(output_schema.cloned()))),
        _ => None,
    }
}
