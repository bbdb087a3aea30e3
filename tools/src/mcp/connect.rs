//! Opening a connection: a stdio child in its own process group (so `npx` and the `node` it
//! starts die together), or a streamable HTTP session; then the `initialize` handshake.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::ClientServiceExt;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tokio::io::AsyncBufReadExt;

use super::config::{ServerConfig, Transport};
use super::host::Host;

pub(crate) type Service = RunningService<RoleClient, Host>;

/// How to open the session: `initialize` with 2025-11-25 first; a server that refuses it
/// because it speaks only 2026-07-28 is opened again with `server/discover`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Lifecycle {
    Initialize,
    Discover,
}

impl Lifecycle {
    fn mode(self) -> ClientLifecycleMode {
        match self {
            Lifecycle::Initialize => ClientLifecycleMode::Initialize,
            Lifecycle::Discover => ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        }
    }
}

/// True for the error of a server that wants a newer protocol than `initialize` offers.
pub(crate) fn wants_discover(error: &str) -> bool {
    error.contains("-32022") && error.contains("2026-07-28")
}

/// A session and, for a stdio server, its process group, killed when the session goes: a
/// server that exits on its own can leave children behind (as `npx` leaves `node`).
pub(crate) struct Live {
    pub service: Service,
    _group: GroupKill,
}

/// Kills a process group when dropped.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal; the group is the one we created for this
            // server (ProcessGroup::leader), so nothing else is hit. ESRCH (already gone) is fine.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}
/// The last lines a stdio server wrote to stderr: why it failed, when it did.
#[derive(Clone, Default)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Set when the current process's stderr reached its end.
    ended: Arc<tokio::sync::Notify>,
}

impl StderrTail {
    const LINES: usize = 8;
    const LINE_CHARS: usize = 300;

    fn push(&self, line: &str) {
        if let Ok(mut q) = self.lines.lock() {
            if q.len() == Self::LINES {
                q.pop_front();
            }
            q.push_back(line.chars().take(Self::LINE_CHARS).collect());
        }
    }

    /// Waits briefly for a dying process's last words, so that an error can quote them.
    pub async fn settle(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_millis(500), self.ended.notified())
            .await;
    }

    /// `; its stderr ends: …` for error messages, or nothing.
    pub fn suffix(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .lock()
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends: {}", lines.join(" | "))
        }
    }
}

/// Connects and runs `initialize`. Errors are messages for the user (the caller adds the
/// server's name and the timeout).
pub(crate) async fn connect(
    config: &ServerConfig,
    host: Host,
    stderr: &StderrTail,
    lifecycle: Lifecycle,
) -> Result<Live, String> {
    match &config.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = CommandWrap::with_new(command, |c| {
                c.args(args).envs(env);
                if let Some(d) = cwd {
                    c.current_dir(d);
                }
            });
            cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
            // The server's stderr must not reach ours (it would garble the progress line):
            // its last lines are kept for error messages and logged at debug level.
            let (transport, err) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            let pgid = transport.id();
            if let Some(err) = err {
                let tail = stderr.clone();
                let server = config.name.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(err).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(server = %server, "stderr: {line}");
                        tail.push(&line);
                    }
                    tail.ended.notify_waiters();
                    tail.ended.notify_one();
                });
            }
            match host.serve_with_lifecycle(transport, lifecycle.mode()).await {
                Ok(service) => Ok(Live {
                    service,
                    _group: GroupKill(pgid),
                }),
                Err(e) => {
                    drop(GroupKill(pgid));
                    stderr.settle().await;
                    Err(format!("initialize failed: {e}{}", stderr.suffix()))
                }
            }
        }
        Transport::Http { url, headers } => {
            let mut map = HashMap::new();
            for (k, v) in headers {
                let name = http::HeaderName::try_from(k.as_str())
                    .map_err(|e| format!("header `{k}`: {e}"))?;
                let value = http::HeaderValue::try_from(v.as_str())
                    .map_err(|e| format!("header `{k}`: {e}"))?;
                map.insert(name, value);
            }
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map),
            );
            let service = host
                .serve_with_lifecycle(transport, lifecycle.mode())
                .await
                .map_err(|e| format!("initialize with {url} failed: {e}"))?;
            Ok(Live {
                service,
                _group: GroupKill(None),
            })
        }
    }
}
