//! gRPC `govtrust.ca.v1.CertificateAuthority`: parse, authorize, call the CA, answer.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use govtrust_ca::{
    Ca, Caller, CertFilter, CertRecord, CertStatus, Change, DisplayText, DnsName, Issued,
    NationalId, Network, OrgId, Person, PersonId, PersonRegistration, ProtectionLevel,
    ReEnrollment, Reason, Registration, Serial, SystemName, TokenTtl,
};
use govtrust_proto::ca as pb;
use pb::certificate_authority_server::CertificateAuthority;
use pb::issue_enrollment_token_response::Outcome as TokenOutcome;
use tonic::{Request, Response, Status};

use super::authz::{Action, Holder, authorize};
use super::dual_control::{self, Gate, REENROLLMENT_APPROVERS};
use super::handler::{answer, blocking, detached};
use super::identity::{self, Authenticator, Principal};
use super::metrics::Metrics;
use super::refusal_layer::{ENROLL, ENROLL_PERSON};
use super::refusals::{Kind, Refusal, Refusals, token_actor};
use super::status;

/// Default enrollment-token lifetime.
const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Default and maximum page sizes of ListCertificates.
const PAGE_DEFAULT: usize = 100;
const PAGE_MAX: usize = 1000;

/// The certificate-authority service.
pub struct CaService {
    ca: Arc<Ca>,
    auth: Arc<Authenticator>,
    gate: Gate,
    /// Refused enrollments are recorded here (other refusals by the server's layer).
    refusals: Arc<Refusals>,
    metrics: Arc<Metrics>,
}

impl CaService {
    pub fn new(
        ca: Arc<Ca>,
        auth: Arc<Authenticator>,
        gate: Gate,
        refusals: Arc<Refusals>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            ca,
            auth,
            gate,
            refusals,
            metrics,
        }
    }

    fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        self.auth.of(request)
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// A new token; for a system that has held a certificate, under dual control: without an
/// approval id a re-enrollment request is filed and answered pending, with one the approved
/// request is carried out.
fn issue_token(
    ca: &Ca,
    gate: &Gate,
    principal: &Principal,
    request: &pb::IssueEnrollmentTokenRequest,
    ttl: TokenTtl,
) -> Result<pb::IssueEnrollmentTokenResponse, Status> {
    let operation = govtrust_ca::reenrollment(
        &request.name,
        request.carry_keys,
        ttl,
        request.revoke_current,
    );
    let claim = match request.approval_id.as_str() {
        "" => None,
        id => Some(gate.claim(principal, id, &operation)?),
    };
    let approved = claim.as_ref().map(|claim| ReEnrollment {
        claim,
        carry_keys: request.carry_keys,
    });
    let asked = govtrust_ca::TokenRequest {
        ttl,
        reenrollment: approved,
        revoke_current: request.revoke_current,
    };
    match ca.issue_token_revoking(&principal.spiffe_id, &request.name, asked) {
        Ok(registered) => Ok(pb::IssueEnrollmentTokenResponse {
            system: Some(system_message(&registered.system)),
            outcome: Some(TokenOutcome::EnrollmentToken(registered.token.to_string())),
            token_expires_at: Some(registered.token_expires_at.into()),
        }),
        Err(govtrust_ca::Error::ApprovalRequired { system, .. }) => {
            let keys = if request.carry_keys { "keeps" } else { "loses" };
            let revoked = match request.revoke_current {
                true => "; its certificates that still stand are revoked",
                false => "",
            };
            let summary = format!(
                "new enrollment token for {system}, which has held a certificate: whoever holds \
                 it becomes {system}; the new enrollment {keys} access to the keys of earlier \
                 ones{revoked}"
            );
            let filed = gate.request(principal, operation, summary, REENROLLMENT_APPROVERS)?;
            let pending = dual_control::message(&filed, gate.now());
            Ok(pb::IssueEnrollmentTokenResponse {
                outcome: Some(TokenOutcome::PendingApproval(pending)),
                ..Default::default()
            })
        }
        Err(error) => Err(status::ca(error)),
    }
}

#[tonic::async_trait]
impl CertificateAuthority for CaService {
    async fn register_system(
        &self,
        request: Request<pb::RegisterSystemRequest>,
    ) -> Reply<pb::RegisterSystemResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::RegisterSystem)?;
            registration(request)
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, registration| {
                let registered = ca
                    .register_system(&principal.spiffe_id, registration)
                    .map_err(status::ca)?;
                Ok(pb::RegisterSystemResponse {
                    system: Some(system_message(&registered.system)),
                    enrollment_token: registered.token.to_string(),
                    token_expires_at: Some(registered.token_expires_at.into()),
                })
            },
        )
        .await
    }

    async fn issue_enrollment_token(
        &self,
        request: Request<pb::IssueEnrollmentTokenRequest>,
    ) -> Reply<pb::IssueEnrollmentTokenResponse> {
        let (ca, gate) = (self.ca.clone(), self.gate.clone());
        let admit = |principal: &Principal, request: pb::IssueEnrollmentTokenRequest| {
            authorize(principal, Action::IssueToken)?;
            let ttl = token_ttl(request.token_ttl_seconds)?;
            Ok((request, ttl))
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, (request, ttl)| issue_token(&ca, &gate, &principal, &request, ttl),
        )
        .await
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Reply<pb::RevokeCertificateResponse> {
        let (ca, metrics) = (self.ca.clone(), self.metrics.clone());
        let admit = |_: &Principal, request: pb::RevokeCertificateRequest| {
            let reason = revocation_reason(request.reason)?;
            Ok((request, reason))
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, (request, reason)| {
                let change = Change::Revoke(reason);
                let certificate = change_status(
                    &ca,
                    &metrics,
                    &principal,
                    &request.serial,
                    change,
                    &request.note,
                )?;
                Ok(pb::RevokeCertificateResponse {
                    certificate: Some(certificate),
                })
            },
        )
        .await
    }

    async fn suspend_certificate(
        &self,
        request: Request<pb::SuspendCertificateRequest>,
    ) -> Reply<pb::SuspendCertificateResponse> {
        let (ca, metrics) = (self.ca.clone(), self.metrics.clone());
        let admit = |_: &Principal, request| Ok(request);
        answer(
            &self.auth,
            request,
            admit,
            move |principal, request: pb::SuspendCertificateRequest| {
                let certificate = change_status(
                    &ca,
                    &metrics,
                    &principal,
                    &request.serial,
                    Change::Suspend,
                    &request.note,
                )?;
                Ok(pb::SuspendCertificateResponse {
                    certificate: Some(certificate),
                })
            },
        )
        .await
    }

    async fn unsuspend_certificate(
        &self,
        request: Request<pb::UnsuspendCertificateRequest>,
    ) -> Reply<pb::UnsuspendCertificateResponse> {
        let (ca, metrics) = (self.ca.clone(), self.metrics.clone());
        let admit = |_: &Principal, request| Ok(request);
        answer(
            &self.auth,
            request,
            admit,
            move |principal, request: pb::UnsuspendCertificateRequest| {
                let certificate = change_status(
                    &ca,
                    &metrics,
                    &principal,
                    &request.serial,
                    Change::Unsuspend,
                    &request.note,
                )?;
                Ok(pb::UnsuspendCertificateResponse {
                    certificate: Some(certificate),
                })
            },
        )
        .await
    }

    async fn enroll(&self, request: Request<pb::EnrollRequest>) -> Reply<pb::EnrollResponse> {
        let peer = request.remote_addr();
        let request = request.into_inner();
        let actor = token_actor(&request.token);
        // On an async worker, not the blocking pool: the CSR check and the signature (~100 µs
        // of CPU), then the task sleeps until the batch is durable with no thread parked for
        // it (4.5 context switches per enrollment became 1). A task of its own, so a client
        // that hangs up cannot stop it between the commit and what the CA learns from it.
        let ca = self.ca.clone();
        let enrolling = async move { ca.enroll_async(&request.token, &request.csr).await };
        let issued = detached(enrolling)
            .await
            .and_then(|r| r.map_err(status::ca));
        if let Err(refused) = &issued {
            let refusal = Refusal::new(Kind::Enrollment, actor, peer, ENROLL, refused);
            self.refusals.record(refusal).await;
        }
        let issued = issued?;
        self.metrics.issued.inc("enroll");
        Ok(Response::new(pb::EnrollResponse {
            certificate: Some(issued_message(issued)),
        }))
    }

    async fn renew(&self, request: Request<pb::RenewRequest>) -> Reply<pb::RenewResponse> {
        let mut request = request;
        let principal = self.auth.take(&mut request)?;
        authorize(&principal, Action::Renew)?;
        let csr = request.into_inner().csr;
        let administrator = matches!(principal.kind, identity::Kind::Administrator(_));
        let caller = Caller {
            spiffe_id: principal.spiffe_id,
            serial: principal.serial,
        };
        let ca = self.ca.clone();
        let issued = match administrator {
            true => {
                blocking(move || ca.renew_administrator(&caller, &csr).map_err(status::ca)).await
            }
            // A system's renewal awaits its commit on the async workers, as Enroll does.
            false => detached(async move { ca.renew_async(&caller, &csr).await })
                .await
                .and_then(|r| r.map_err(status::ca)),
        }?;
        self.metrics.issued.inc("renew");
        Ok(Response::new(pb::RenewResponse {
            certificate: Some(issued_message(issued)),
        }))
    }

    async fn get_ca_chain(
        &self,
        request: Request<pb::GetCaChainRequest>,
    ) -> Reply<pb::GetCaChainResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ReadCaChain)?;
        let chain = self.ca.chain();
        Ok(Response::new(pb::GetCaChainResponse {
            root_pem: chain.root_pem.clone(),
            extranet_pem: chain.extranet_pem.clone(),
            intranet_pem: chain.intranet_pem.clone(),
        }))
    }

    async fn get_certificate(
        &self,
        request: Request<pb::GetCertificateRequest>,
    ) -> Reply<pb::GetCertificateResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ReadCertificates)?;
        let serial = Serial::parse(&request.get_ref().serial).map_err(status::ca)?;
        let record = self.ca.certificate(&serial).map_err(status::ca)?;
        Ok(Response::new(pb::GetCertificateResponse {
            certificate: Some(cert_message(&record, self.ca.now())),
        }))
    }

    async fn list_certificates(
        &self,
        request: Request<pb::ListCertificatesRequest>,
    ) -> Reply<pb::ListCertificatesResponse> {
        let principal = self.principal(&request)?;
        authorize(&principal, Action::ReadCertificates)?;
        let request = request.into_inner();
        let filter = cert_filter(&request)?;
        let size = page_size(request.page_size);
        let token = Some(request.page_token).filter(|t| !t.is_empty());
        let (records, next) = self
            .ca
            .list_certificates(&filter, size, token.as_deref())
            .map_err(status::ca)?;
        let now = self.ca.now();
        Ok(Response::new(pb::ListCertificatesResponse {
            certificates: records
                .iter()
                .map(|record| cert_message(record, now))
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn issue_certificate(
        &self,
        request: Request<pb::IssueCertificateRequest>,
    ) -> Reply<pb::IssueCertificateResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::IssueCertificate)?;
            Ok(request)
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, request: pb::IssueCertificateRequest| {
                let caller = Caller {
                    spiffe_id: principal.spiffe_id,
                    serial: principal.serial,
                };
                let issued = ca
                    .issue_certificate(
                        &caller,
                        &request.csr,
                        &request.profile,
                        request.validity_days,
                    )
                    .map_err(status::ca)?;
                Ok(pb::IssueCertificateResponse {
                    certificate: Some(issued_message(issued)),
                })
            },
        )
        .await
    }

    async fn register_person(
        &self,
        request: Request<pb::RegisterPersonRequest>,
    ) -> Reply<pb::RegisterPersonResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request| {
            authorize(principal, Action::RegisterPerson)?;
            person_registration(request)
        };
        answer(
            &self.auth,
            request,
            admit,
            move |principal, registration| {
                let token = ca
                    .register_person(&principal.spiffe_id, registration)
                    .map_err(status::ca)?;
                Ok(pb::RegisterPersonResponse {
                    person: Some(person_message(&token.person)),
                    enrollment_token: token.token.to_string(),
                    token_expires_at: Some(token.expires_at.into()),
                })
            },
        )
        .await
    }

    async fn issue_person_token(
        &self,
        request: Request<pb::IssuePersonTokenRequest>,
    ) -> Reply<pb::IssuePersonTokenResponse> {
        let ca = self.ca.clone();
        let admit = |principal: &Principal, request: pb::IssuePersonTokenRequest| {
            authorize(principal, Action::RegisterPerson)?;
            Ok((token_ttl(request.token_ttl_seconds)?, request.id))
        };
        answer(&self.auth, request, admit, move |principal, (ttl, id)| {
            let token = ca
                .issue_person_token(&principal.spiffe_id, &id, ttl)
                .map_err(status::ca)?;
            Ok(pb::IssuePersonTokenResponse {
                person: Some(person_message(&token.person)),
                enrollment_token: token.token.to_string(),
                token_expires_at: Some(token.expires_at.into()),
            })
        })
        .await
    }

    async fn enroll_person(
        &self,
        request: Request<pb::EnrollPersonRequest>,
    ) -> Reply<pb::EnrollPersonResponse> {
        let peer = request.remote_addr();
        let request = request.into_inner();
        let actor = token_actor(&request.token);
        let ca = self.ca.clone();
        let issued = blocking(move || {
            ca.enroll_person(
                &request.token,
                &request.csr,
                &request.profile,
                request.validity_days,
            )
            .map_err(status::ca)
        })
        .await;
        if let Err(refused) = &issued {
            let refusal = Refusal::new(Kind::Enrollment, actor, peer, ENROLL_PERSON, refused);
            self.refusals.record(refusal).await;
        }
        Ok(Response::new(pb::EnrollPersonResponse {
            certificate: Some(issued_message(issued?)),
        }))
    }
}

/// A person's registration from the wire; an unspecified network is the intranet.
fn person_registration(request: pb::RegisterPersonRequest) -> Result<PersonRegistration, Status> {
    let network = match request.network {
        0 => Network::Intranet,
        value => network(value)?,
    };
    Ok(PersonRegistration {
        id: PersonId::try_from(request.id).map_err(status::ca)?,
        name: DisplayText::parse("name", &request.name).map_err(status::ca)?,
        department: DisplayText::parse("department", &request.department).map_err(status::ca)?,
        national_id: NationalId::parse(&request.national_id).map_err(status::ca)?,
        network,
        token_ttl: token_ttl(request.token_ttl_seconds)?,
    })
}

fn person_message(person: &Person) -> pb::Person {
    pb::Person {
        id: person.id.clone(),
        name: person.name.clone(),
        department: person.department.clone(),
        network: network_message(person.network) as i32,
        spiffe_id: person.spiffe_id.clone(),
        registered_at: Some(person.registered_at.into()),
    }
}

fn registration(request: pb::RegisterSystemRequest) -> Result<Registration, Status> {
    let level = ProtectionLevel::try_from(request.protection_level).map_err(status::ca)?;

    let dns_names = request
        .dns_names
        .into_iter()
        .map(DnsName::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(status::ca)?;
    Ok(Registration {
        name: SystemName::try_from(request.name).map_err(status::ca)?,
        org_id: OrgId::try_from(request.org_id).map_err(status::ca)?,
        protection_level: level,
        network: network(request.network)?,
        dns_names,
        token_ttl: token_ttl(request.token_ttl_seconds)?,
    })
}

/// A token lifetime from the wire: 0 means the default.
fn token_ttl(seconds: u32) -> Result<TokenTtl, Status> {
    let ttl = match seconds {
        0 => TOKEN_TTL_DEFAULT,
        seconds => Duration::from_secs(u64::from(seconds)),
    };
    TokenTtl::try_from(ttl).map_err(status::ca)
}

fn network(value: i32) -> Result<Network, Status> {
    match pb::Network::try_from(value) {
        Ok(pb::Network::Extranet) => Ok(Network::Extranet),
        Ok(pb::Network::Intranet) => Ok(Network::Intranet),
        _ => Err(Status::invalid_argument(
            "network: choose extranet or intranet",
        )),
    }
}

fn network_message(network: Network) -> pb::Network {
    match network {
        Network::Extranet => pb::Network::Extranet,
        Network::Intranet => pb::Network::Intranet,
    }
}

fn cert_filter(request: &pb::ListCertificatesRequest) -> Result<CertFilter, Status> {
    let status = match pb::CertificateStatus::try_from(request.status) {
        Ok(pb::CertificateStatus::Unspecified) => None,
        Ok(pb::CertificateStatus::Valid) => Some(CertStatus::Valid),
        Ok(pb::CertificateStatus::Expired) => Some(CertStatus::Expired),
        Ok(pb::CertificateStatus::Revoked) => Some(CertStatus::Revoked),
        Ok(pb::CertificateStatus::Suspended) => Some(CertStatus::Suspended),
        Ok(pb::CertificateStatus::Superseded) => Some(CertStatus::Superseded),
        Err(_) => return Err(Status::invalid_argument("status: not a certificate status")),
    };
    let expiring_before = request.expiring_before.map(system_time).transpose()?;
    Ok(CertFilter {
        system: Some(request.system.clone()).filter(|s| !s.is_empty()),
        status,
        expiring_before,
    })
}

fn system_time(timestamp: prost_types::Timestamp) -> Result<SystemTime, Status> {
    SystemTime::try_from(timestamp)
        .map_err(|_| Status::invalid_argument("expiring_before: not a valid time"))
}

fn page_size(requested: u32) -> usize {
    match usize::try_from(requested).unwrap_or(PAGE_MAX) {
        0 => PAGE_DEFAULT,
        n => n.min(PAGE_MAX),
    }
}

fn system_message(system: &govtrust_ca::SystemRecord) -> pb::System {
    pb::System {
        name: system.name.to_string(),
        org_id: system.org_id.to_string(),
        protection_level: u32::from(system.level.get()),
        network: network_message(system.network) as i32,
        spiffe_id: system.spiffe_id.clone(),
        dns_names: system.dns_names.iter().map(ToString::to_string).collect(),
        registered_at: Some(system.registered_at.into()),
    }
}

fn issued_message(issued: Issued) -> pb::IssuedCertificate {
    pb::IssuedCertificate {
        serial: issued.serial.to_string(),
        certificate_pem: issued.certificate_pem,
        chain_pem: issued.chain_pem,
        not_before: Some(issued.not_before.into()),
        not_after: Some(issued.not_after.into()),
        spiffe_id: issued.spiffe_id,
    }
}

/// `record` with its status at `now` (the CA's clock, which `--dev-clock-offset-days` moves).
fn cert_message(record: &CertRecord, now: SystemTime) -> pb::Certificate {
    let status = match record.status(now) {
        CertStatus::Valid => pb::CertificateStatus::Valid,
        CertStatus::Expired => pb::CertificateStatus::Expired,
        CertStatus::Revoked => pb::CertificateStatus::Revoked,
        CertStatus::Suspended => pb::CertificateStatus::Suspended,
        CertStatus::Superseded => pb::CertificateStatus::Superseded,
    };
    let revocation = record.revocation.as_ref().map(|r| pb::Revocation {
        reason: i32::from(r.reason.code()),
        revoked_at: Some(r.at.into()),
        revoked_by: r.by.clone(),
    });
    let superseded = record.superseded.as_ref();
    pb::Certificate {
        serial: record.serial.to_string(),
        system: record.system.clone(),
        spiffe_id: record.spiffe_id.clone(),
        network: network_message(record.network) as i32,
        status: status as i32,
        not_before: Some(record.not_before.into()),
        not_after: Some(record.not_after.into()),
        certificate_pem: record.pem.clone(),
        issuer: record.issuer.to_string(),
        revocation,
        superseded_by: superseded.map(|s| s.by.to_string()).unwrap_or_default(),
        superseded_at: superseded.map(|s| s.at.into()),
    }
}

/// The reason a revocation request gives: any RFC 5280 reason but certificateHold.
fn revocation_reason(value: i32) -> Result<Reason, Status> {
    let reason = u8::try_from(value).ok().and_then(Reason::from_code);
    match reason {
        Some(Reason::CertificateHold) => Err(Status::invalid_argument(
            "reason: certificateHold is a suspension; call SuspendCertificate",
        )),
        Some(reason) => Ok(reason),
        None => Err(Status::invalid_argument(format!(
            "reason: {value} is not an RFC 5280 revocation reason"
        ))),
    }
}

/// Whose certificate `record` is, as the policy point tells holders apart.
fn holder(ca: &Ca, principal: &Principal, record: &CertRecord) -> Result<Holder, Status> {
    if record.spiffe_id == principal.spiffe_id {
        // Its own: the certificate it presents, or any other of its identity unless the one
        // presented was renewed and the other was not (then it is a newer one: a stolen old
        // certificate must not revoke the holder's current one).
        let presented = principal.serial.clone();
        let renewed = ca.supersession(&presented).is_some();
        let own = record.serial == presented || !renewed || record.superseded.is_some();
        return Ok(if own {
            Holder::Caller
        } else {
            Holder::NewerOwn
        });
    }
    if record.system == govtrust_ca::SERVER_HOLDER {
        return Ok(Holder::Server);
    }
    let role = ca.role(&record.spiffe_id).map_err(status::ca)?;
    Ok(match role {
        Some(_) => Holder::Administrator,
        None => Holder::Other,
    })
}

/// Carries out `change` of the certificate `serial` for `principal`, if the policy allows it.
fn change_status(
    ca: &Ca,
    metrics: &Metrics,
    principal: &Principal,
    serial: &str,
    change: Change,
    note: &str,
) -> Result<pb::Certificate, Status> {
    let serial = Serial::parse(serial).map_err(status::ca)?;
    let officer = matches!(
        principal.kind,
        identity::Kind::Administrator(govtrust_ca::Role::SecurityAdministrator)
    );
    // Anyone else may only revoke its own: whether another serial exists, and whose it is,
    // is none of its business.
    let not_own = || {
        Status::permission_denied(format!(
            "{} may change only its own certificates (the one it presents, or older ones)",
            principal.spiffe_id
        ))
    };
    let record = match ca.certificate(&serial) {
        Err(govtrust_ca::Error::CertificateNotFound { .. }) if !officer => return Err(not_own()),
        other => other.map_err(status::ca)?,
    };
    let holder = holder(ca, principal, &record)?;
    if !officer && holder != Holder::Caller {
        return Err(not_own());
    }
    authorize(principal, Action::ChangeCertificate(change, holder))?;
    let presented = Some(principal.serial.clone());
    let actor = govtrust_ca::Actor {
        id: &principal.spiffe_id,
        certificate: presented.as_ref(),
    };
    let changed = ca
        .change_status(actor, &serial, change, note)
        .map_err(status::ca)?;
    metrics.revocations.inc(match change {
        Change::Revoke(_) => "revoke",
        Change::Suspend => "suspend",
        Change::Unsuspend => "unsuspend",
    });
    Ok(cert_message(&changed, ca.now()))
}
