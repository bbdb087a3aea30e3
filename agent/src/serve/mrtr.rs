//! Asking the client on a connection where servers cannot send it requests (protocol
//! 2026-07-28 and later): the `run_task` call answers `input_required` (SEP-2322), carrying the
//! approval form and an opaque handle, while its run waits for the answer; the client's retry
//! of the call, with the form filled in and the handle echoed, hands the answer to the run and
//! waits for what comes next (another question, or the run's result).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_tools::BoxFuture;
use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, CallToolResult, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, ElicitationSchema, InputRequest, InputRequiredResult, InputResponses,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::approve::{ANSWER_WITHIN, Answer, answer_of, question};
use super::handler::State;
use super::run::{Prepared, Report};
use crate::permissions::{Approval, ApprovalRequest, Approver};
use rmcp::model::ProgressToken;
use rmcp::service::{Peer, RoleServer};

/// Starts `prepared` as a run whose client is asked by `input_required` results, and waits
/// for its first leg. The run is not the request's: it goes on between the client's
/// retries, and a cancelled request (the first or a retry) cancels it.
pub(super) async fn start(
    state: Arc<State>,
    prepared: Prepared,
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
    request: &CancellationToken,
) -> Result<CallToolResponse, ErrorData> {
    let (tx, legs) = mpsc::unbounded_channel();
    let run = CancellationToken::new();
    let report = Report {
        peer,
        token,
        task: None,
        approver: Some(Arc::new(AskByResult(tx.clone()))),
    };
    let (st, ct) = (state.clone(), run.clone());
    tokio::spawn(async move {
        let result = st.execute(prepared, report, ct).await.map(|(r, _)| r);
        let _ = tx.send(Leg::Done(result));
    });
    state.parking.next(legs, run, request).await
}

/// The key of the one input request a leg carries.
const KEY: &str = "approval";

/// What a run waiting on its client sends out: a question, or its end.
enum Leg {
    Ask(ApprovalRequest, oneshot::Sender<Approval>),
    Done(Result<CallToolResult, ErrorData>),
}

/// A run between two legs: where its next leg comes from, who takes the pending answer.
struct Parked {
    next: mpsc::UnboundedReceiver<Leg>,
    answer: oneshot::Sender<Approval>,
    cancel: CancellationToken,
    since: Instant,
}

/// The runs waiting for their clients' answers, by handle.
#[derive(Default)]
pub(super) struct Parking(Mutex<HashMap<String, Parked>>);

/// The approver of a run whose client is asked by `input_required` results.
struct AskByResult(mpsc::UnboundedSender<Leg>);

impl Approver for AskByResult {
    fn name(&self) -> String {
        "mcp client".into()
    }

    fn ask(&self, request: ApprovalRequest) -> BoxFuture<'static, Approval> {
        let (tx, rx) = oneshot::channel();
        let sent = self.0.send(Leg::Ask(request, tx)).is_ok();
        Box::pin(async move {
            if !sent {
                return Approval::No(Some("the MCP client is gone".into()));
            }
            match tokio::time::timeout(ANSWER_WITHIN, rx).await {
                Ok(Ok(a)) => a,
                _ => Approval::No(Some(format!(
                    "the MCP client did not answer within {} minutes",
                    ANSWER_WITHIN.as_secs() / 60
                ))),
            }
        })
    }
}

impl Parking {
    /// Waits for the run's next leg: its result, or a question, parked under a new handle
    /// and returned as `input_required`. A cancelled request cancels the run.
    async fn next(
        &self,
        mut legs: mpsc::UnboundedReceiver<Leg>,
        run: CancellationToken,
        request: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let leg = tokio::select! {
            leg = legs.recv() => leg,
            () = request.cancelled() => {
                run.cancel();
                return Err(ErrorData::internal_error("cancelled", None));
            }
        };
        match leg {
            None => Err(ErrorData::internal_error(
                "the run ended without a result",
                None,
            )),
            Some(Leg::Done(r)) => r.map(CallToolResponse::Complete),
            Some(Leg::Ask(question_of, answer)) => {
                let handle = handle();
                let form = ElicitRequestParams::FormElicitationParams {
                    meta: None,
                    message: question(&question_of),
                    requested_schema: ElicitationSchema::from_type::<Answer>()
                        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?,
                };
                self.park(
                    handle.clone(),
                    Parked {
                        next: legs,
                        answer,
                        cancel: run,
                        since: Instant::now(),
                    },
                );
                let requests = [(
                    KEY.to_string(),
                    InputRequest::Elicitation(ElicitRequest::new(form)),
                )]
                .into_iter()
                .collect();
                Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
                    Some(requests),
                    Some(handle),
                )))
            }
        }
    }

    /// Hands the client's answer (`responses`) to the run parked under `handle`, then waits
    /// for its next leg.
    pub(super) async fn resume(
        &self,
        handle: &str,
        responses: Option<&InputResponses>,
        request: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let parked = self
            .0
            .lock()
            .ok()
            .and_then(|mut p| p.remove(handle))
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    "run_task: requestState names no run waiting for an answer (it ended, or the answer came too late)",
                    None,
                )
            })?;
        let answer = responses
            .and_then(|r| r.get(KEY))
            .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok())
            .map(|r| match r.action {
                ElicitationAction::Accept => r
                    .content
                    .and_then(|c| serde_json::from_value::<Answer>(c).ok())
                    .map_or(Approval::No(None), answer_of),
                _ => Approval::No(None),
            })
            .unwrap_or(Approval::No(None));
        let _ = parked.answer.send(answer);
        self.next(parked.next, parked.cancel, request).await
    }

    /// Parks a run, first stopping those whose client has not come back in time (their
    /// approver has answered "no" by then, so they have ended or gone on).
    fn park(&self, handle: String, parked: Parked) {
        if let Ok(mut p) = self.0.lock() {
            p.retain(|_, old| {
                let keep = old.since.elapsed() < ANSWER_WITHIN + Duration::from_secs(60);
                if !keep {
                    old.cancel.cancel();
                }
                keep
            });
            p.insert(handle, parked);
        }
    }
}

/// An unguessable handle: it is all a client has to name its run by.
fn handle() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // The handle's only use is to look the run up; without randomness it must still be
        // unique.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
