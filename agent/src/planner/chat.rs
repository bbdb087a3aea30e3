//! [`Chat`]: a conversation with an agent, continued turn by turn.

use tokio_util::sync::CancellationToken;

use super::{Agent, Outcome, RunError};
use crate::prompt::Message;

/// A conversation with an [`Agent`]: each [`Chat::send`] is a run that continues the messages
/// of the one before, so the model sees the whole conversation and the prompt of the next turn
/// starts with the last one's, which the model's prefix cache still holds.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # use std::sync::Arc;
/// # let answer = |a: &str| {
/// #     format!(r#"<tool_call>{{"name": "final_answer", "arguments": {{"answer": "{a}"}}}}</tool_call>"#)
/// # };
/// # let model = Arc::new(agent::replay::Replay::chatml([answer("Hello, Ada."), answer("Ada.")]));
/// # let agent = agent::Agent::builder().backend(model.clone()).build().await?;
/// let mut chat = agent.chat();
/// chat.send("My name is Ada.").await?;
/// let reply = chat.send("What is my name?").await?;
/// assert_eq!(reply.answer_text().as_deref(), Some("Ada."));
/// // The second turn's prompt held the first turn.
/// assert!(model.prompts.lock().unwrap()[1].contains("My name is Ada."));
/// # Ok(())
/// # }
/// ```
pub struct Chat {
    agent: Agent,
    messages: Vec<Message>,
}

impl Chat {
    pub(super) fn new(agent: Agent) -> Self {
        Self {
            agent,
            messages: Vec::new(),
        }
    }

    /// Runs `text` as the next user message, with the agent's settings (its steps, tools and
    /// thinking per turn), and keeps the conversation, however the run ended.
    pub async fn send(&mut self, text: impl Into<String>) -> Result<Outcome, RunError> {
        let mut run = self.agent.runner();
        run.history(self.messages.clone());
        let outcome = run
            .run(&self.agent.config(text), &CancellationToken::new())
            .await?;
        self.messages = outcome.messages.clone();
        Ok(outcome)
    }

    /// The conversation so far: the system prompt, then every turn.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }
}
