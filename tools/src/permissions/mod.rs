//! Permissions on tool calls: rules on names and arguments ([`Rule`]), the policy they make
//! with the tools' annotations ([`Permissions`]), and hooks ([`hooks`]). The run that asks
//! people and records decisions is the agent crate's; this is the part without a model.

pub mod hooks;
mod policy;
mod rules;

pub use hooks::{CommandHook, HookAnswer, HookEvent, HookInput, HookRun, HookSpecs};
pub use policy::{Mode, Permissions, Reason};
pub use rules::{Each, Rule, RuleError};
