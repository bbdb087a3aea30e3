//! Every MCP server of a run, started in parallel in the background: a run waits only for its
//! `required` servers; an optional server that is slow joins with its tools when it is ready
//! (one slow server delays only its own tools), and one that fails is reported and left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::client::{McpError, McpServer};
use super::config::McpConfig;
use super::{Hooks, McpEvent};
use crate::{Tool, ToolProvider};

#[derive(Clone)]
enum State {
    Starting,
    Ready(Arc<McpServer>),
    Failed(String),
}

struct Entry {
    required: bool,
    state: watch::Receiver<State>,
    task: tokio::task::JoinHandle<()>,
}

/// Every configured server of a run, each starting, ready or failed; a [`ToolProvider`] of the
/// tools of those that are ready.
pub struct McpPool {
    servers: BTreeMap<String, Entry>,
}

/// Where one server stands, for `agent tools` and warnings.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerStatus {
    /// Not up yet.
    Starting,
    /// Up.
    Ready {
        /// How many of its tools the configuration lets through.
        tools: usize,
        /// The protocol version the server answered with.
        protocol: String,
    },
    /// Its start failed, for the reason given.
    Failed(String),
}

impl McpPool {
    /// Starts every server at once and returns at once. Must run inside a tokio runtime.
    pub fn start(config: &McpConfig, hooks: Hooks) -> Arc<McpPool> {
        let mut servers = BTreeMap::new();
        for (name, cfg) in &config.servers {
            let (tx, rx) = watch::channel(State::Starting);
            let (server_cfg, hooks) = (cfg.clone(), hooks.clone());
            let task = tokio::spawn(async move {
                let required = server_cfg.required;
                let name = server_cfg.name.clone();
                let state = match McpServer::start(server_cfg, hooks.clone()).await {
                    Ok(server) => State::Ready(server),
                    Err(e) => {
                        // Reported through the hooks' events: the caller decides how to show it.
                        tracing::debug!(required, "{e}");
                        let error = e.detail();
                        hooks.emit(McpEvent::Failed {
                            server: name,
                            error: error.clone(),
                            required,
                        });
                        State::Failed(error)
                    }
                };
                let _ = tx.send(state);
            });
            servers.insert(
                name.clone(),
                Entry {
                    required: cfg.required,
                    state: rx,
                    task,
                },
            );
        }
        Arc::new(McpPool { servers })
    }

    async fn settled(&self, name: &str) -> State {
        let Some(e) = self.servers.get(name) else {
            return State::Failed(format!("no MCP server named `{name}`"));
        };
        let mut rx = e.state.clone();
        match rx.wait_for(|s| !matches!(s, State::Starting)).await {
            Ok(s) => s.clone(),
            Err(_) => State::Failed("its start was abandoned".into()),
        }
    }

    /// Waits until every required server is up (each within its own startup timeout).
    pub async fn wait_required(&self) -> Result<(), McpError> {
        // One after another: the servers start in parallel anyway, so this waits for the
        // slowest, not the sum. (Async closures over the map here made this future fail the
        // higher-ranked `Send` check of callers that need a `Send` future, like rmcp handlers.)
        for (name, entry) in &self.servers {
            if !entry.required {
                continue;
            }
            if let State::Failed(message) = self.settled(name).await {
                return Err(McpError::Start {
                    server: name.clone(),
                    message: format!("required, but it did not start: {message}"),
                });
            }
        }
        Ok(())
    }

    /// Waits until server `name` is up; an error names it and why it did not start.
    pub async fn wait_ready(&self, name: &str) -> Result<(), McpError> {
        match self.settled(name).await {
            State::Failed(message) => Err(McpError::Start {
                server: name.to_string(),
                message: format!(
                    "a task's tool_choice names its tool, but it did not start: {message}"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Whether `name` is one of the pool's servers.
    pub fn has(&self, name: &str) -> bool {
        self.servers.contains_key(name)
    }

    /// Waits until every server is up or has failed.
    pub async fn wait_all(&self) {
        // A loop, not futures over the map: see `wait_required`.
        for name in self.servers.keys() {
            self.settled(name).await;
        }
    }

    /// Where each server stands now, by name; waits for nothing.
    pub fn status(&self) -> BTreeMap<String, ServerStatus> {
        self.servers
            .iter()
            .map(|(name, e)| {
                let s = match &*e.state.borrow() {
                    State::Starting => ServerStatus::Starting,
                    State::Ready(s) => ServerStatus::Ready {
                        tools: s.specs().len(),
                        protocol: s.protocol(),
                    },
                    State::Failed(m) => ServerStatus::Failed(m.clone()),
                };
                (name.clone(), s)
            })
            .collect()
    }

    /// The servers that are up now.
    pub fn ready(&self) -> Vec<Arc<McpServer>> {
        self.servers
            .values()
            .filter_map(|e| match &*e.state.borrow() {
                State::Ready(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// Stops every server, including ones still starting, and waits for their processes.
    pub async fn shutdown(&self) {
        let mut aborted = Vec::new();
        for e in self.servers.values() {
            if matches!(&*e.state.borrow(), State::Starting) {
                // Dropping the start drops the child, which kills its process group.
                e.task.abort();
                aborted.push(e.state.clone());
            }
        }
        // An abort takes effect when the runtime next drops the task, which also drops its
        // state's sender: until then the process is alive, so wait for that.
        for mut state in aborted {
            while state.changed().await.is_ok() {}
        }
        // In parallel: each close may wait seconds for a slow server to exit.
        let closing: Vec<_> = self
            .ready()
            .into_iter()
            .map(|s| tokio::spawn(async move { s.shutdown().await }))
            .collect();
        for c in closing {
            let _ = c.await;
        }
    }
}

/// A pool dropped without [`McpPool::shutdown`] (its last user gone) leaves no process: starts
/// still running are stopped, and each server's process group is killed when its last handle
/// goes.
impl Drop for McpPool {
    fn drop(&mut self) {
        for e in self.servers.values() {
            e.task.abort();
        }
    }
}

impl ToolProvider for McpPool {
    fn tools(&self) -> Vec<Arc<dyn Tool>> {
        self.ready().iter().flat_map(|s| s.tools()).collect()
    }
}
