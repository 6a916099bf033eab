//! gRPC `govtrust.audit.v1.AuditLog`: the audit administrator reads the event log.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_audit::{AuditLog, Record};
use govtrust_proto::audit as pb;
use pb::audit_log_server::AuditLog as AuditLogService;
use tonic::{Request, Response, Status};

use super::authz::{Action, authorize};
use super::handler::answer;
use super::identity::{Authenticator, Principal};
use super::status;

/// Default and maximum page sizes of ListEvents.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// The audit service.
pub struct AuditService {
    log: AuditLog,
    auth: Arc<Authenticator>,
}

impl AuditService {
    pub fn new(log: AuditLog, auth: Arc<Authenticator>) -> Self {
        Self { log, auth }
    }
}

#[tonic::async_trait]
impl AuditLogService for AuditService {
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let log = self.log.clone();
        let admit = |principal: &Principal, request: pb::ListEventsRequest| {
            authorize(principal, Action::ReadAudit)?;
            let size = match usize::try_from(request.page_size).unwrap_or(PAGE_MAX) {
                0 => PAGE_DEFAULT,
                n => n.min(PAGE_MAX),
            };
            Ok((request.after_sequence, size))
        };
        answer(&self.auth, request, admit, move |_, (after, size)| {
            let records = log.records(after, size).map_err(|e| status::internal(&e))?;
            Ok(pb::ListEventsResponse {
                events: records.iter().map(event).collect(),
            })
        })
        .await
    }
}

fn event(record: &Record) -> pb::Event {
    let millis = u64::try_from(record.at_unix_ms).unwrap_or(0);
    pb::Event {
        sequence: record.sequence,
        time: Some((SystemTime::UNIX_EPOCH + Duration::from_millis(millis)).into()),
        action: record.action.clone(),
        actor: record.actor.clone(),
        target: record.target.clone(),
        details: record
            .details
            .iter()
            .map(|(name, value)| pb::Detail {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}
