//! A conversation: each message continues the last, so the model sees every earlier turn, and
//! the prompt of each turn starts with the one before (which the prefix cache still holds).
//!
//! ```sh
//! cargo run -p agent --example chat
//! ```

use agent::Agent;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Short replies: a chat turn needs no more than a few sentences.
    let agent = Agent::builder()
        .tools([])
        .max_steps(2)
        .max_tokens(200)
        .build()
        .await?;
    let mut chat = agent.chat();
    for message in ["My name is Ada and I like sailing.", "What is my name?"] {
        println!("> {message}");
        println!("{}", chat.send(message).await?);
    }
    // The system prompt, then a user message and a reply (at least) per turn.
    println!("({} messages)", chat.messages().len());
    Ok(())
}
