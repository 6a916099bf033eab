//! `govtrust.ca.v1.Trust`: certificate verification for relying parties and the trust bundle.

use std::sync::Arc;
use std::time::SystemTime;

use govtrust_ca::{Ca, Problem, Purpose, Question, TrustAnchor, Verdict};
use govtrust_proto::ca as pb;
use pb::trust_server::Trust;
use tonic::{Request, Response, Status};

use super::authz::{Action, authorize};
use super::fetch::HttpCrls;
use super::handler::{answer, blocking};
use super::identity::{Authenticator, Principal};
use super::status;

type Reply<T> = Result<Response<T>, Status>;

/// The Trust service.
pub struct TrustService {
    ca: Arc<Ca>,
    auth: Arc<Authenticator>,
    crls: Arc<HttpCrls>,
}

impl TrustService {
    pub fn new(ca: Arc<Ca>, auth: Arc<Authenticator>) -> Self {
        Self {
            ca,
            auth,
            crls: Arc::new(HttpCrls::default()),
        }
    }
}

#[tonic::async_trait]
impl Trust for TrustService {
    async fn verify_certificate(
        &self,
        request: Request<pb::VerifyCertificateRequest>,
    ) -> Reply<pb::VerifyCertificateResponse> {
        let (ca, crls) = (self.ca.clone(), self.crls.clone());
        let admit = |principal: &Principal, request: pb::VerifyCertificateRequest| {
            authorize(principal, Action::VerifyCertificate)?;
            let purpose = purpose(request.purpose)?;
            let at = request
                .at
                .map(|t| {
                    SystemTime::try_from(t)
                        .map_err(|_| Status::invalid_argument("at: not a valid time"))
                })
                .transpose()?;
            Ok((request, purpose, at))
        };
        answer(
            &self.auth,
            request,
            admit,
            move |_, (request, purpose, at)| {
                let question = Question {
                    chain: &request.chain,
                    purpose,
                    at,
                    name: Some(request.name.as_str()).filter(|n| !n.is_empty()),
                };
                let verdict = ca.verify(&question, crls.as_ref()).map_err(status::ca)?;
                for problem in &verdict.problems {
                    if let govtrust_ca::Problem::RevocationUnknown { reason } = problem {
                        tracing::warn!(serial = %verdict.serial, %reason, "a certificate's revocation status could not be learnt");
                    }
                }
                Ok(verdict_message(verdict))
            },
        )
        .await
    }

    async fn get_trust_bundle(
        &self,
        _request: Request<pb::GetTrustBundleRequest>,
    ) -> Reply<pb::GetTrustBundleResponse> {
        let ca = self.ca.clone();
        let bundle = blocking(move || {
            let (anchors, sequence) = ca.trust_bundle().map_err(status::ca)?;
            Ok(pb::GetTrustBundleResponse {
                bundle_pem: bundle_pem(&ca, &anchors),
                anchors: anchors.iter().map(anchor_message).collect(),
                sequence,
            })
        })
        .await?;
        Ok(Response::new(bundle))
    }

    async fn add_trust_anchor(
        &self,
        request: Request<pb::AddTrustAnchorRequest>,
    ) -> Reply<pb::AddTrustAnchorResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::ManageTrust)?;
            Ok(request)
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, request: pb::AddTrustAnchorRequest| {
                let added = ca
                    .trust_add(
                        &principal.spiffe_id,
                        &request.name,
                        &request.certificate,
                        &request.note,
                    )
                    .map_err(status::ca)?;
                Ok(pb::AddTrustAnchorResponse {
                    anchor: Some(anchor_message(&added)),
                })
            },
        )
        .await
    }

    async fn remove_trust_anchor(
        &self,
        request: Request<pb::RemoveTrustAnchorRequest>,
    ) -> Reply<pb::RemoveTrustAnchorResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::ManageTrust)?;
            Ok(request)
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, request: pb::RemoveTrustAnchorRequest| {
                let removed = ca
                    .trust_remove(&principal.spiffe_id, &request.name, &request.note)
                    .map_err(status::ca)?;
                Ok(pb::RemoveTrustAnchorResponse {
                    anchor: Some(anchor_message(&removed)),
                })
            },
        )
        .await
    }
}

/// Every anchor and this deployment's issuing CAs, PEM.
pub fn bundle_pem(ca: &Ca, anchors: &[TrustAnchor]) -> String {
    let chain = ca.chain();
    let mut pem: String = anchors.iter().map(TrustAnchor::pem).collect();
    pem.push_str(&chain.extranet_pem);
    pem.push_str(&chain.intranet_pem);
    pem
}

fn purpose(value: i32) -> Result<Purpose, Status> {
    match pb::Purpose::try_from(value) {
        Ok(pb::Purpose::Unspecified | pb::Purpose::Any) => Ok(Purpose::Any),
        Ok(pb::Purpose::ServerAuth) => Ok(Purpose::ServerAuth),
        Ok(pb::Purpose::ClientAuth) => Ok(Purpose::ClientAuth),
        Ok(pb::Purpose::DocumentSigning) => Ok(Purpose::DocumentSigning),
        Ok(pb::Purpose::Encryption) => Ok(Purpose::Encryption),
        Err(_) => Err(Status::invalid_argument(format!(
            "purpose: {value} is not a purpose"
        ))),
    }
}

fn verdict_message(verdict: Verdict) -> pb::VerifyCertificateResponse {
    pb::VerifyCertificateResponse {
        valid: verdict.valid(),
        problems: verdict.problems.iter().map(problem_message).collect(),
        subject: verdict.subject,
        serial: verdict.serial,
        spiffe_id: verdict.spiffe_id.unwrap_or_default(),
        anchor: verdict.anchor.unwrap_or_default(),
    }
}

fn problem_message(problem: &Problem) -> pb::Problem {
    use pb::problem::Kind;
    let (kind, at, reason) = match problem {
        Problem::Expired { at } => (Kind::Expired, Some(*at), None),
        Problem::NotYetValid { from } => (Kind::NotYetValid, Some(*from), None),
        Problem::UntrustedIssuer { .. } => (Kind::UntrustedIssuer, None, None),
        Problem::WrongUsage { .. } => (Kind::WrongUsage, None, None),
        Problem::NameMismatch { .. } => (Kind::NameMismatch, None, None),
        Problem::Revoked { reason, at } => (Kind::Revoked, Some(*at), *reason),
        Problem::Suspended { since } => (Kind::Suspended, Some(*since), None),
        Problem::RevocationUnknown { .. } => (Kind::RevocationUnknown, None, None),
    };
    pb::Problem {
        kind: kind as i32,
        detail: problem.to_string(),
        revocation_reason: reason.map_or(0, |r| i32::from(r.code())),
        at: at.map(Into::into),
    }
}

pub fn anchor_message(anchor: &TrustAnchor) -> pb::TrustAnchor {
    pb::TrustAnchor {
        name: anchor.name.clone(),
        certificate_pem: anchor.pem(),
        subject: anchor.subject.clone(),
        fingerprint: anchor.fingerprint.clone(),
        added_by: anchor.added_by.clone(),
        added_at: Some(anchor.added_at.into()),
    }
}
