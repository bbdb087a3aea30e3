//! A scripted agent with its own thinking policy: a closure from each step's context to a
//! budget. This one thinks hard on the first step, thinks again (less) after a tool error,
//! skips thinking after a tool result that looks fine, and spends no more than 600 reasoning
//! tokens on the whole run.
//!
//! ```sh
//! cargo run -p agent --example adaptive_thinking -- qwen3-0.6b "What is 17 * 23?"
//! ```
//!
//! Prints one line per step (its kind, the budget the closure chose, the reasoning tokens
//! used), then the answer.

use agent::Agent;
use agent::events::{Event, Observer};
use agent::thinking::StepContext;
use agent::{Budget, Device, ToolChoice};
use tokio_util::sync::CancellationToken;

/// The policy: plain Rust, with everything the step knows.
fn budget(cx: &StepContext) -> Budget {
    let left = 600usize.saturating_sub(cx.thinking_used) as u32;
    let wanted = match cx.last_tool_result {
        None if cx.step == 1 => 256,
        Some(r) if r.starts_with("Error") || r.contains("error") => 128,
        None => 64,
        Some(_) => 0,
    };
    match wanted.min(left) {
        0 => Budget::Off,
        n => Budget::Tokens(n),
    }
}

/// Prints each step's budget and use as the run goes.
struct StepLog;

impl Observer for StepLog {
    fn event(&mut self, e: &Event) {
        match e {
            Event::StepStarted {
                step,
                kind,
                thinking_budget,
                thinking_applies,
                ..
            } => {
                let budget = serde_json::to_string(thinking_budget).unwrap_or_default();
                let note = if *thinking_applies {
                    ""
                } else {
                    " (this model does not think)"
                };
                print!("step {step} {kind:?}: budget {budget}{note}");
            }
            Event::ModelOutput {
                thinking_tokens,
                thinking_capped,
                ..
            } => {
                println!(
                    ", thought {thinking_tokens} tokens{}",
                    if *thinking_capped { " (capped)" } else { "" }
                );
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args.next().unwrap_or_else(|| "smollm2-135m".into());
    let question = args
        .next()
        .unwrap_or_else(|| "What is 17 * 23? Use the calculator.".into());
    let agent = Agent::builder()
        .model(model)
        .device(Device::Cpu)
        .max_steps(4)
        .max_tokens(512)
        .tool_choice(ToolChoice::Required)
        .thinking_policy(budget)
        .build()
        .await?;
    let mut run = agent.runner();
    run.observe(Box::new(StepLog));
    let outcome = run
        .run(&agent.config(question), &CancellationToken::new())
        .await?;
    println!(
        "answer: {}",
        outcome
            .answer_text()
            .unwrap_or_else(|| format!("none ({:?})", outcome.stop))
    );
    Ok(())
}
