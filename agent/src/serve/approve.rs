//! Asking the MCP client about a call of its task's run: an elicitation request (a form:
//! run it? for the rest of the run? why not?) on connections that allow server-to-client
//! requests. Where the client cannot be asked, the server's own rules decide (its `--yes`,
//! or the call is refused).

use std::sync::Arc;
use std::time::Duration;

use agent_tools::BoxFuture;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ElicitationError, ElicitationMode, Peer, RoleServer};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::permissions::{Approval, ApprovalRequest, Approver};

/// How long the client's user has to answer.
pub(super) const ANSWER_WITHIN: Duration = Duration::from_secs(600);

/// The form the client fills in.
#[derive(Debug, Deserialize, JsonSchema)]
pub(super) struct Answer {
    /// Run this call?
    allow: bool,
    /// Also run later calls of this tool in this run without asking.
    #[serde(default)]
    for_this_run: Option<bool>,
    /// Why not (told to the model).
    #[serde(default)]
    reason: Option<String>,
}

rmcp::elicit_safe!(Answer);

/// Asks the client over `peer`.
pub(super) struct Elicit {
    peer: Peer<RoleServer>,
    /// The server's approver, for when the request fails.
    fallback: Option<Arc<dyn Approver>>,
}

impl Elicit {
    /// An approver asking the client, when it can be asked: it declared form elicitation
    /// and the connection is one where servers may send requests (before 2026-07-28, whose
    /// stateless servers cannot).
    pub(super) fn for_client(
        peer: &Peer<RoleServer>,
        fallback: Option<Arc<dyn Approver>>,
    ) -> Option<Elicit> {
        let legacy = peer
            .peer_info()
            .is_some_and(|i| i.protocol_version < ProtocolVersion::V_2026_07_28);
        let form = peer
            .supported_elicitation_modes()
            .contains(&ElicitationMode::Form);
        (legacy && form).then(|| Elicit {
            peer: peer.clone(),
            fallback,
        })
    }
}

impl Approver for Elicit {
    fn name(&self) -> String {
        "mcp client".into()
    }

    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Approval> {
        let (peer, fallback) = (self.peer.clone(), self.fallback.clone());
        Box::pin(async move {
            match peer
                .elicit_with_timeout::<Answer>(question(&request), Some(ANSWER_WITHIN))
                .await
            {
                Ok(Some(a)) => answer_of(a),
                Ok(None)
                | Err(ElicitationError::UserDeclined | ElicitationError::UserCancelled) => {
                    Approval::No(None)
                }
                // A client that cannot be asked after all: the server's own answer.
                Err(ElicitationError::CapabilityNotSupported) => match fallback {
                    Some(f) => f.ask(request).await,
                    None => Approval::No(Some(
                        "the MCP client cannot be asked, and this server does not allow it otherwise".into(),
                    )),
                },
                // One that could be asked and did not answer (in time, or in the form) said no.
                Err(e) => Approval::No(Some(format!("the MCP client did not answer: {e}"))),
            }
        })
    }
}

/// The question put to the client: the tool, where it comes from, what it says of itself,
/// why it is asked about, its arguments.
pub(super) fn question(request: &ApprovalRequest) -> String {
    format!(
        "The agent wants to call {} ({}, {}).\nWhy it asks: {}\nArguments:\n{}",
        request.tool,
        request.source,
        request.annotations.describe(),
        request.why,
        serde_json::to_string_pretty(&request.arguments).unwrap_or_default()
    )
}

/// What a filled-in form says.
pub(super) fn answer_of(a: Answer) -> Approval {
    match a {
        Answer {
            allow: false,
            reason,
            ..
        } => Approval::No(reason),
        Answer {
            for_this_run: Some(true),
            ..
        } => Approval::ForRun,
        Answer { .. } => Approval::Once,
    }
}
