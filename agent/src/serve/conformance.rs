//! Fixture tools for the official MCP conformance suite (`agent serve --conformance-fixtures`,
//! a hidden flag): its tool scenarios call tools by fixed names. Only the ones that exercise
//! what this server does are here (text results, error results, progress); the scenarios for
//! things it does not do (images, audio, logging, sampling, elicitation, subscriptions,
//! completions) are listed with reasons in `tests/conformance-baseline.yml`. Progress goes
//! through the same notification path as `run_task`'s.

use std::sync::Arc;

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam, Tool};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::json;

/// The fixture tools' names.
pub const NAMES: [&str; 3] = [
    "test_simple_text",
    "test_error_handling",
    "test_tool_with_progress",
];

/// The fixture tools, as listed to clients.
pub fn tools() -> Vec<Tool> {
    let empty = Arc::new(
        json!({"type": "object", "properties": {}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    vec![
        Tool::new(
            "test_simple_text",
            "Conformance fixture: returns a text result.",
            empty.clone(),
        ),
        Tool::new(
            "test_error_handling",
            "Conformance fixture: returns a tool error.",
            empty.clone(),
        ),
        Tool::new(
            "test_tool_with_progress",
            "Conformance fixture: reports progress 0, 50 and 100 of 100.",
            empty,
        ),
    ]
}

/// Calls fixture `name`; a name that is not a fixture's is an invalid-params error.
pub async fn call(
    name: &str,
    cx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    match name {
        "test_simple_text" => Ok(CallToolResult::success(vec![ContentBlock::text(
            "This is a simple text response for testing.",
        )])),
        "test_error_handling" => Ok(CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])),
        "test_tool_with_progress" => {
            if let Some(token) = cx.meta.get_progress_token() {
                for p in [0.0, 50.0, 100.0] {
                    let _ = cx
                        .peer
                        .notify_progress(
                            ProgressNotificationParam::new(token.clone(), p)
                                .with_total(100.0)
                                .with_message(format!("{p} of 100")),
                        )
                        .await;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            Ok(CallToolResult::success(vec![ContentBlock::text(
                "progress reported",
            )]))
        }
        other => Err(ErrorData::invalid_params(
            format!("no tool named `{other}`"),
            None,
        )),
    }
}
