//! Dual control at the gRPC edge: which acts need a second officer, who may approve them, and
//! the `govtrust.approval.v1.Approvals` service where officers decide.
//!
//! A call that needs approval and carries no `approval_id` files a request and answers with it
//! (pending); the same caller repeats the call with `approval_id` once it is approved, and the
//! act commits together with the request marked executed ([`Gate::claim`]).
//!
//! | act | approvers (never the requester) |
//! |---|---|
//! | re-enrollment token (system that has held a certificate) | security administrator |
//! | state change of a key the caller does not own | security or system administrator |
//! | immediate destruction of any key | security or system administrator |

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_approval::{
    ApprovalId, Approvals, Claim, Decision, Officer, Operation, Proposal, Request as Approval,
    Status as ApprovalStatus,
};
use govtrust_kms::Clock;
use govtrust_proto::approval as pb;
use pb::approvals_server::Approvals as ApprovalsApi;
use tonic::{Request, Response, Status};

use super::authz::{Action, authorize};
use super::handler::{answer, blocking};
use super::identity::{Authenticator, Kind, Principal};
use super::status;

/// How long a request may wait to be approved and carried out.
const REQUEST_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default and maximum page sizes of ListApprovals.
const PAGE_MAX: usize = 1000;

/// Who may approve re-enrollment tokens.
pub const REENROLLMENT_APPROVERS: &[&str] = &["security-admin"];
/// Who may approve acts on keys: another security administrator or the system administrator.
pub const KEY_APPROVERS: &[&str] = &["security-admin", "system-admin"];

/// The approvals of the deployment, as the services use them.
#[derive(Clone)]
pub struct Gate {
    approvals: Approvals,
    clock: Arc<dyn Clock>,
}

impl Gate {
    pub fn new(approvals: Approvals, clock: Arc<dyn Clock>) -> Self {
        Self { approvals, clock }
    }

    /// Files a request by `principal` for `operation`, approvable by `approvers`.
    pub fn request(
        &self,
        principal: &Principal,
        operation: Operation,
        summary: String,
        approvers: &[&str],
    ) -> Result<Approval, Status> {
        let proposal = Proposal {
            operation,
            summary,
            approver_roles: approvers.iter().map(|r| (*r).to_owned()).collect(),
            required: 1,
            ttl: REQUEST_TTL,
        };
        let officer = officer(principal);
        self.approvals
            .request(officer, proposal, self.clock.now())
            .map_err(status::approval)
    }

    /// Claims the approved request `approval_id` of `principal` for exactly `operation`.
    pub fn claim(
        &self,
        principal: &Principal,
        approval_id: &str,
        operation: &Operation,
    ) -> Result<Claim, Status> {
        let id = ApprovalId::parse(approval_id).map_err(status::approval)?;
        let now = self.clock.now();
        let claimed = self
            .approvals
            .claim(&principal.spiffe_id, &id, operation, now);
        claimed.map_err(|refused| self.refused(principal, &id, refused, now))
    }

    /// Audits a refused claim (`approval.refused`) and logs it; the status the caller gets.
    fn refused(
        &self,
        principal: &Principal,
        id: &ApprovalId,
        refused: govtrust_approval::Error,
        now: SystemTime,
    ) -> Status {
        let caller = &principal.spiffe_id;
        if let Err(error) = self.approvals.record_refusal(caller, id, &refused, now) {
            tracing::error!(%error, approval = %id, "cannot audit a refused approval claim");
            return status::approval(error);
        }
        tracing::warn!(approval = %id, %caller, reason = %refused, "approval claim refused");
        status::approval(refused)
    }

    /// The server's clock now (dev mode may run it ahead).
    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }
}

/// The officer a principal acts as: administrators by role, others as `system`.
fn officer(principal: &Principal) -> Officer<'_> {
    let role = match &principal.kind {
        Kind::Administrator(role) => role.as_str(),
        Kind::System { .. } => "system",
        Kind::Unknown => "none",
    };
    Officer {
        id: &principal.spiffe_id,
        role,
    }
}

/// For callers who are no administrator: the identity whose own requests alone they may read.
fn own_only(principal: &Principal) -> Option<String> {
    match principal.kind {
        Kind::Administrator(_) => None,
        _ => Some(principal.spiffe_id.clone()),
    }
}

/// The wire form of a request at `now`.
pub fn message(request: &Approval, now: SystemTime) -> pb::Approval {
    let at = |ms: u64| Some(from_ms(ms).into());
    pb::Approval {
        id: request.id.clone(),
        kind: request.operation.kind.name().to_owned(),
        target: request.operation.target.clone(),
        parameters: request
            .operation
            .parameters
            .iter()
            .map(|(name, value)| pb::Parameter {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        summary: request.summary.clone(),
        requester: request.requester.clone(),
        requester_role: request.requester_role.clone(),
        approver_roles: request.approver_roles.clone(),
        required: u32::from(request.required),
        approvals: request.approvals.iter().map(decision).collect(),
        rejection: request.rejection.as_ref().map(decision),
        status: wire_status(request.status(now)) as i32,
        created_at: at(request.created_at_ms),
        expires_at: at(request.expires_at_ms),
        executed_at: request.executed_at_ms.and_then(at),
    }
}

fn decision(decision: &Decision) -> pb::Decision {
    pb::Decision {
        by: decision.by.clone(),
        role: decision.role.clone(),
        at: Some(from_ms(decision.at_ms).into()),
        reason: decision.reason.clone(),
    }
}

fn wire_status(status: ApprovalStatus) -> pb::ApprovalStatus {
    match status {
        ApprovalStatus::Pending => pb::ApprovalStatus::Pending,
        ApprovalStatus::Approved => pb::ApprovalStatus::Approved,
        ApprovalStatus::Rejected => pb::ApprovalStatus::Rejected,
        ApprovalStatus::Expired => pb::ApprovalStatus::Expired,
        ApprovalStatus::Executed => pb::ApprovalStatus::Executed,
    }
}

fn domain_status(status: i32) -> Result<Option<ApprovalStatus>, Status> {
    let status = pb::ApprovalStatus::try_from(status)
        .map_err(|_| Status::invalid_argument(format!("invalid status: unknown value {status}")))?;
    Ok(match status {
        pb::ApprovalStatus::Unspecified => None,
        pb::ApprovalStatus::Pending => Some(ApprovalStatus::Pending),
        pb::ApprovalStatus::Approved => Some(ApprovalStatus::Approved),
        pb::ApprovalStatus::Rejected => Some(ApprovalStatus::Rejected),
        pb::ApprovalStatus::Expired => Some(ApprovalStatus::Expired),
        pb::ApprovalStatus::Executed => Some(ApprovalStatus::Executed),
    })
}

fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `govtrust.approval.v1.Approvals`: administrators list, read, approve and reject.
pub struct ApprovalService {
    gate: Gate,
    auth: Arc<Authenticator>,
}

impl ApprovalService {
    pub fn new(gate: Gate, auth: Arc<Authenticator>) -> Self {
        Self { gate, auth }
    }

    fn principal<T>(&self, request: &Request<T>, action: Action<'_>) -> Result<Principal, Status> {
        let principal = self.auth.of(request)?;
        authorize(&principal, action)?;
        Ok(principal)
    }

    fn id(text: &str) -> Result<ApprovalId, Status> {
        ApprovalId::parse(text).map_err(status::approval)
    }

    /// Runs `decide` (approve or reject) for the caller off the async workers.
    async fn decide<F>(&self, principal: Principal, decide: F) -> Result<pb::Approval, Status>
    where
        F: FnOnce(
                &Approvals,
                Officer<'_>,
                SystemTime,
            ) -> Result<Approval, govtrust_approval::Error>
            + Send
            + 'static,
    {
        let gate = self.gate.clone();
        blocking(move || {
            let now = gate.now();
            let decided = decide(&gate.approvals, officer(&principal), now);
            decided.map(|r| message(&r, now)).map_err(status::approval)
        })
        .await
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ApprovalsApi for ApprovalService {
    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Reply<pb::ListApprovalsResponse> {
        let gate = self.gate.clone();
        let admit = |principal: &Principal, request: pb::ListApprovalsRequest| {
            authorize(principal, Action::ReadApprovals)?;
            let only = domain_status(request.status)?;
            let after = match request.page_token.as_str() {
                "" => None,
                token => Some(Self::id(token)?),
            };
            let size = usize::try_from(request.page_size).unwrap_or(PAGE_MAX);
            Ok((only, after, size))
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, (only, after, size)| {
                let only_own = own_only(&principal);
                let now = gate.now();
                let (found, next) = gate
                    .approvals
                    .list(only, now, size, after.as_ref())
                    .map_err(status::approval)?;
                let shown = found
                    .iter()
                    .filter(|r| only_own.as_ref().is_none_or(|me| &r.requester == me))
                    .map(|r| message(r, now))
                    .collect();
                Ok(pb::ListApprovalsResponse {
                    approvals: shown,
                    next_page_token: next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_approval(
        &self,
        request: Request<pb::GetApprovalRequest>,
    ) -> Reply<pb::GetApprovalResponse> {
        let gate = self.gate.clone();
        let admit = |principal: &Principal, request: pb::GetApprovalRequest| {
            authorize(principal, Action::ReadApprovals)?;
            Self::id(&request.id)
        };
        answer(&self.auth, request, admit, move |principal, id| {
            let found = gate.approvals.get(&id).map_err(status::approval)?;
            if own_only(&principal).is_some_and(|me| me != found.requester) {
                return Err(Status::permission_denied(format!(
                    "{} may read only its own approval requests",
                    principal.spiffe_id
                )));
            }
            Ok(pb::GetApprovalResponse {
                approval: Some(message(&found, gate.now())),
            })
        })
        .await
    }

    async fn approve(&self, request: Request<pb::ApproveRequest>) -> Reply<pb::ApproveResponse> {
        let principal = self.principal(&request, Action::DecideApproval)?;
        let request = request.into_inner();
        let id = Self::id(&request.id)?;
        let approval = self
            .decide(principal, move |approvals, officer, now| {
                approvals.approve(officer, &id, &request.reason, now)
            })
            .await?;
        Ok(Response::new(pb::ApproveResponse {
            approval: Some(approval),
        }))
    }

    async fn reject(&self, request: Request<pb::RejectRequest>) -> Reply<pb::RejectResponse> {
        let principal = self.principal(&request, Action::DecideApproval)?;
        let request = request.into_inner();
        let id = Self::id(&request.id)?;
        let approval = self
            .decide(principal, move |approvals, officer, now| {
                approvals.reject(officer, &id, &request.reason, now)
            })
            .await?;
        Ok(Response::new(pb::RejectResponse {
            approval: Some(approval),
        }))
    }
}
