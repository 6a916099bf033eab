//! `govtrust serve`: the gRPC server.
//!
//! One TLS port carries the certificate authority, the key-management centre, its seal, and the
//! gRPC health and reflection services. The server starts sealed unless `--dev` unseals it from
//! local shares; the CA answers reads while sealed, everything that needs a key waits for unseal.
//! The security administrator may seal it again at any time (`govtrust seal`); unseal attempts
//! expire after `--unseal-timeout`.
//!
//! Callers with a verified client certificate and callers without one are served by two
//! HTTP/2 servers with their own limits over the same services (see [`limits`]).
//!
//! Every service sits behind [`refusal_layer`], which audits each refused call through
//! [`refusals`]; key operations report each use to the [`usage`] ledger. Both write through
//! [`journal`] and write what they still count in memory when the server shuts down.

mod audit_service;
mod authz;
mod bundle;
mod ca_service;
mod dual_control;
mod fetch;
mod handler;
mod http;
mod identity;
mod journal;
mod kms_service;
mod limits;
mod metrics;
mod reflection;
mod refusal_layer;
mod refusals;
mod slots;
mod status;
mod tls;
mod trust_service;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use govtrust_approval::Approvals;
use govtrust_audit::AuditLog;
use govtrust_ca::Ca;
use govtrust_kms::{Clock, Kms, SystemClock};
use govtrust_proto::approval::approvals_server::ApprovalsServer;
use govtrust_proto::audit::audit_log_server::AuditLogServer;
use govtrust_proto::ca::trust_server::TrustServer;
use govtrust_proto::{ca::certificate_authority_server::CertificateAuthorityServer, kms as kms_pb};
use govtrust_store::{RedbStore, Store};
use tokio::sync::watch;
use tonic::service::Routes;
use tower_layer::{Identity, Stack};

use crate::config::{Config, PublicUrl};
use crate::init;
use crate::layout::Layout;

/// HTTP/2 pings find dead peers so their connection slots are freed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often keys whose waiting period ended are destroyed.
const DESTRUCTION_SWEEP: Duration = Duration::from_secs(60);

/// How `govtrust serve` runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The settings from the file, the environment and the flags.
    pub config: Config,
    /// Development mode: create the deployment on first start and unseal from local shares.
    pub dev: bool,
    /// Dev mode only: run the server's clock this many days ahead.
    pub dev_clock_offset_days: Option<u32>,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub async fn serve(options: Options) -> anyhow::Result<()> {
    tls::install_provider();
    raise_open_files();
    let config = &options.config;
    let layout = Layout::new(&config.data);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (http_listener, http_address) = http::bind(config.http_listen).await?;
    if options.dev {
        let url = config.public_url.clone();
        let url = url.unwrap_or_else(|| PublicUrl::for_address(http_address));
        prepare_dev(&layout, &url)?;
    }
    let domains = open(&layout, &options, http_address)?;
    let public_url = domains.public_url.clone();
    if options.dev {
        dev_unseal(&layout, &domains.kms)?;
    }
    server_pair(&layout).recover()?;
    let (tls_config, server_certificate) =
        tls::server_config(&layout.server_certificate(), &layout.server_key())?;
    // Keys whose waiting period ended while the server was down are gone before it answers.
    let kms = domains.kms.clone();
    tokio::task::spawn_blocking(move || destroy_due(&kms)).await?;
    announce(&layout, &options, &domains.kms, (http_address, &public_url));
    tokio::spawn(sweep_destructions(domains.kms.clone()));
    tokio::spawn(refresh_crls(domains.ca.clone(), domains.kms.clone()));
    tokio::spawn(renew_server_certificate(
        domains.ca.clone(),
        domains.kms.clone(),
        layout.clone(),
        server_certificate,
    ));
    let auth = Arc::new(identity::Authenticator::new(
        domains.ca.clone(),
        domains.clock.clone(),
    ));
    tokio::spawn(sweep_unseal_attempts(domains.kms.clone()));
    let recorders = Recorders::new(&domains);
    let (stop, stopped) = watch::channel(());
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop.send(());
    });
    let web = Arc::new(http::Http {
        ca: domains.ca.clone(),
        kms: domains.kms.clone(),
        metrics: recorders.metrics.clone(),
        signing: http::Signing::default(),
    });
    let web = http::serve(http_listener, web, stopped.clone());
    let incoming = tls::incoming(listener, tls_config, vouch(auth.clone()));
    let routes = routes(domains, auth.clone(), options.dev, &recorders).await?;
    let served = serve_tiers(routes, incoming, &recorders, &auth, stopped);
    let served = tokio::try_join!(served, web).map(|_| ());
    recorders.flush().await;
    served
}

/// Open files the server needs besides its connections: the store, logs, fetches.
const OTHER_FILES: u64 = 512;

/// Raises the soft limit on open files to the hard one, and warns when even that is below what
/// the connection limits of both ports need (then a flood makes accept fail for everyone).
fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let needed = (tls::MAX_CONNECTIONS + http::MAX_CONNECTIONS) as u64 + OTHER_FILES;
    // `None` is no limit.
    let mut limit = getrlimit(Resource::Nofile);
    let below = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%error, "cannot raise the open-file limit");
        }
    }
    let current = getrlimit(Resource::Nofile).current;
    if current.is_some_and(|files| files < needed) {
        tracing::warn!(
            limit = current.unwrap_or_default(),
            needed,
            "the open-file limit is below what the connection limits need: raise it \
             (systemd LimitNOFILE, ulimit -n)"
        );
    }
}

/// The server's own audit writers: refused calls and the key-usage ledger.
struct Recorders {
    refusals: Arc<refusals::Refusals>,
    usage: Arc<usage::Ledger>,
    metrics: Arc<metrics::Metrics>,
}

impl Recorders {
    /// Starts both; each ends its windows in a task of its own.
    fn new(domains: &Domains) -> Self {
        let journal = journal::Journal::new(
            domains.store.clone(),
            Arc::new(domains.audit.clone()),
            domains.clock.clone(),
        );
        let recorders = Self {
            refusals: Arc::new(refusals::Refusals::new(journal.clone())),
            usage: Arc::new(usage::Ledger::new(journal)),
            metrics: Arc::new(metrics::Metrics::default()),
        };
        tokio::spawn(recorders.refusals.clone().run());
        tokio::spawn(recorders.usage.clone().run());
        recorders
    }

    /// Writes what is still counted in memory (at shutdown).
    async fn flush(&self) {
        self.refusals.flush().await;
        self.usage.flush(true).await;
    }
}

/// Whether a peer's certificate chain names a principal of this deployment, and which
/// identity its connections count against.
fn vouch(auth: Arc<identity::Authenticator>) -> tls::Vouch {
    Arc::new(move |chain| {
        let principal = auth.principal(Some(chain)).ok()?;
        let digest = ring::digest::digest(&ring::digest::SHA256, principal.spiffe_id.as_bytes());
        digest.as_ref().try_into().ok()
    })
}

/// Serves callers with and without a certificate, each tier with its own HTTP/2 limits, under
/// one bound on calls in flight, until Ctrl-C or SIGTERM.
async fn serve_tiers(
    routes: Routes,
    incoming: tls::Incoming,
    recorders: &Recorders,
    auth: &Arc<identity::Authenticator>,
    stopped: watch::Receiver<()>,
) -> anyhow::Result<()> {
    let refusals = refusal_layer::RefusalLayer::new(recorders.refusals.clone(), auth.clone());
    let calls = limits::Bound::new(limits::MAX_CALLS);
    let authenticated = tier(limits::AUTHENTICATED, &calls, &refusals, auth)
        .serve_with_incoming_shutdown(
            routes.clone(),
            incoming.authenticated,
            stopping(stopped.clone()),
        );
    let anonymous = tier(limits::ANONYMOUS, &calls, &refusals, auth).serve_with_incoming_shutdown(
        routes,
        incoming.anonymous,
        stopping(stopped),
    );
    tokio::try_join!(authenticated, anonymous).context("the gRPC server failed")?;
    Ok(())
}

/// The HTTP/2 server of one tier of callers. The refusal layer is the outer one, so the
/// calls admission refuses (load shedding, deadlines) are audited too.
fn tier(
    tier: limits::Tier,
    calls: &limits::Bound,
    refusals: &refusal_layer::RefusalLayer,
    auth: &Arc<identity::Authenticator>,
) -> tonic::transport::Server<Stack<limits::Admission, Stack<refusal_layer::RefusalLayer, Identity>>>
{
    let mut server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(tier.max_streams_per_connection))
        .initial_stream_window_size(tier.stream_window)
        .initial_connection_window_size(tier.connection_window);
    if let Some(size) = tier.max_header_list {
        server = server.http2_max_header_list_size(size);
    }
    server
        .layer(refusals.clone())
        .layer(limits::Admission::new(tier, calls.clone(), auth.clone()))
}

async fn stopping(mut stopped: watch::Receiver<()>) {
    let _ = stopped.changed().await;
}

/// The server's clock: the system clock, or in dev mode optionally one running ahead.
fn clock(options: &Options) -> Arc<dyn Clock> {
    match options.dev_clock_offset_days.filter(|_| options.dev) {
        Some(days) => {
            eprintln!("WARNING: dev mode clock runs {days} days ahead");
            Arc::new(AheadClock(Duration::from_secs(u64::from(days) * 86_400)))
        }
        None => Arc::new(SystemClock),
    }
}

/// A clock running a fixed time ahead of the system clock (dev mode rehearsals only).
struct AheadClock(Duration);

impl Clock for AheadClock {
    fn now(&self) -> std::time::SystemTime {
        SystemClock.now() + self.0
    }
}

/// The domains the services expose, over one store.
struct Domains {
    kms: Arc<Kms>,
    ca: Arc<Ca>,
    audit: AuditLog,
    approvals: Approvals,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Where relying parties reach the HTTP port, as certificates name it.
    public_url: PublicUrl,
}

fn open(layout: &Layout, options: &Options, http_address: SocketAddr) -> anyhow::Result<Domains> {
    let (config, clock) = (&options.config, clock(options));
    let database = layout.database();
    if !database.exists() {
        anyhow::bail!(
            "no deployment in {}: run `govtrust init --data {}` first (or `govtrust serve --dev`)",
            layout.root().display(),
            layout.root().display()
        );
    }
    if !layout.complete_marker().exists() {
        anyhow::bail!(
            "the deployment in {} is incomplete: `govtrust init` was interrupted while creating it, \
             so its custodian shares may never have been written; create a new deployment in an \
             empty directory",
            layout.root().display()
        );
    }
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&database)?);
    let audit = AuditLog::new(store.clone());
    let sink = Arc::new(audit.clone());
    let kms = Kms::open(store.clone(), sink.clone(), clock.clone())?;
    let kms = Arc::new(kms.with_unseal_timeout(config.unseal_timeout));
    let approvals = Approvals::new(store.clone(), sink.clone());
    let ca = Ca::open(store.clone(), kms.clone(), sink, clock.clone())?;
    // A dev server's HTTP port moves from start to start: it names the one it has now.
    let stored = ca.public_url().filter(|_| !options.dev);
    let public_url = public_url(config, stored, http_address);
    let ca = ca
        .with_settings(ca_settings(config, &public_url))
        .with_profiles(profiles(config)?);
    Ok(Domains {
        kms,
        ca: Arc::new(ca),
        audit,
        approvals,
        store,
        clock,
        public_url,
    })
}

/// Where relying parties reach the HTTP port: the configuration's `public_url`, else the one
/// given at `init` (`stored`), else the address the port is bound to.
fn public_url(config: &Config, stored: Option<&str>, http_address: SocketAddr) -> PublicUrl {
    let stored = stored.and_then(|url| PublicUrl::parse(url).ok());
    let url = config.public_url.clone().or(stored);
    url.unwrap_or_else(|| PublicUrl::for_address(http_address))
}

/// The certificate profiles: the configuration's directory, else the built-in ones. A bad
/// file stops the server with its name and the key at fault.
fn profiles(config: &Config) -> anyhow::Result<govtrust_ca::Profiles> {
    let profiles = match &config.profiles {
        Some(dir) => govtrust_ca::Profiles::from_dir(dir)?,
        None => govtrust_ca::Profiles::builtin()?,
    };
    Ok(profiles)
}

/// What the CA takes from the configuration; `public_url` is where relying parties reach the
/// HTTP port.
fn ca_settings(config: &Config, public_url: &PublicUrl) -> govtrust_ca::Settings {
    govtrust_ca::Settings {
        base_url: Some(public_url.join("")),
        max_validity: config.certificates.max_validity,
        renewal_grace: config.certificates.renewal_grace,
        crl: govtrust_ca::Timing {
            next_update: config.crl.next_update,
            refresh: config.crl.refresh,
        },
        ocsp: govtrust_ca::Timing {
            next_update: config.ocsp.next_update,
            refresh: config.ocsp.refresh,
        },
    }
}

/// How often CRLs are checked for being due (made anew when older than their refresh).
const CRL_SWEEP: Duration = Duration::from_secs(30);

/// Makes the CRLs that are missing or due, now and every [`CRL_SWEEP`], while unsealed; and,
/// once, the national CA hierarchy of a deployment initialized before it existed.
async fn refresh_crls(ca: Arc<Ca>, kms: Arc<Kms>) {
    let mut interval = tokio::time::interval(CRL_SWEEP);
    // Tried once per run: a failure leaves the keys it made unused in the kms, so it is not
    // repeated every sweep (the next start tries again).
    let mut national_tried = false;
    loop {
        interval.tick().await;
        if kms.is_sealed() {
            continue;
        }
        if !national_tried && ca.national_chain().is_none() {
            national_tried = true;
            let ca = ca.clone();
            match tokio::task::spawn_blocking(move || ca.ensure_national_hierarchy()).await {
                Ok(Ok(true)) => tracing::info!("national (SM2) CA hierarchy created"),
                Ok(Ok(false)) => {}
                Ok(Err(error)) => tracing::error!(%error, "national CA hierarchy not created"),
                Err(error) => tracing::error!(%error, "national CA hierarchy not created"),
            }
        }
        let ca = ca.clone();
        match tokio::task::spawn_blocking(move || ca.refresh_crls()).await {
            Ok(Ok(made)) => {
                for crl in made {
                    tracing::info!(ca = %crl.authority, number = crl.number, entries = crl.entries, "CRL made");
                }
            }
            Ok(Err(error)) => tracing::error!(%error, "CRL refresh failed"),
            Err(error) => tracing::error!(%error, "CRL refresh failed"),
        }
    }
}

/// How often the server's TLS certificate is checked for being due.
const SERVER_RENEWAL_CHECK: Duration = Duration::from_secs(600);

/// The server's TLS key and certificate files, replaced as a pair.
fn server_pair(layout: &Layout) -> crate::credential::Pair<'_> {
    crate::credential::Pair {
        dir: layout.tls_dir(),
        key: "server.key",
        cert: "server.pem",
    }
}

/// Renews the server's TLS certificate two thirds into its lifetime, while unsealed: the new
/// key and certificate go to disk as a pair, then into the TLS configuration; no restart.
async fn renew_server_certificate(
    ca: Arc<Ca>,
    kms: Arc<Kms>,
    layout: Layout,
    certificate: Arc<tls::ServerCertificate>,
) {
    let mut interval = tokio::time::interval(SERVER_RENEWAL_CHECK);
    loop {
        interval.tick().await;
        if kms.is_sealed() {
            continue;
        }
        let (ca, layout, certificate) = (ca.clone(), layout.clone(), certificate.clone());
        let renewed = tokio::task::spawn_blocking(move || renew_if_due(&ca, &layout, &certificate));
        match renewed.await {
            Ok(Ok(Some(serial))) => tracing::info!(%serial, "renewed the server's TLS certificate"),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::error!(
                error = format!("{error:#}"),
                "server certificate renewal failed"
            ),
            Err(error) => tracing::error!(%error, "server certificate renewal failed"),
        }
    }
}

/// The serial of the server's new certificate, if the current one was due.
fn renew_if_due(
    ca: &Ca,
    layout: &Layout,
    certificate: &tls::ServerCertificate,
) -> anyhow::Result<Option<String>> {
    let due = ca.server_renewal_due()?;
    if due.is_none_or(|due| ca.now() < due) {
        return Ok(None);
    }
    let credential = ca.renew_server()?;
    let key = credential
        .private_key_pem
        .as_ref()
        .context("the renewed server credential has no key")?;
    server_pair(layout).replace(key, &credential.certificate_pem)?;
    certificate.install(credential.certificate_pem.as_bytes(), key.as_bytes())?;
    Ok(Some(credential.serial.to_string()))
}

/// Every service, each with its bound on request messages.
async fn routes(
    domains: Domains,
    auth: Arc<identity::Authenticator>,
    dev: bool,
    recorders: &Recorders,
) -> anyhow::Result<Routes> {
    use limits::{CA_MESSAGE, KMS_MESSAGE, SEAL_MESSAGE, SMALL_MESSAGE};
    let Domains {
        kms,
        ca,
        audit,
        approvals,
        clock,
        ..
    } = domains;
    let gate = dual_control::Gate::new(approvals, clock);
    let trust_domain = ca.trust_domain().to_owned();
    let mut routes = Routes::builder();
    routes
        .add_service(health().await.max_decoding_message_size(SMALL_MESSAGE))
        .add_service(reflection::service(auth.clone(), dev)?)
        .add_service(
            kms_pb::seal_server::SealServer::new(kms_service::SealService::new(
                kms.clone(),
                auth.clone(),
            ))
            .max_decoding_message_size(SEAL_MESSAGE),
        )
        .add_service(
            kms_pb::key_management_server::KeyManagementServer::new(kms_service::KeyService::new(
                kms,
                auth.clone(),
                gate.clone(),
                recorders.usage.clone(),
                &trust_domain,
            ))
            .max_decoding_message_size(KMS_MESSAGE),
        )
        .add_service(
            AuditLogServer::new(audit_service::AuditService::new(audit, auth.clone()))
                .max_decoding_message_size(SMALL_MESSAGE),
        )
        .add_service(
            ApprovalsServer::new(dual_control::ApprovalService::new(
                gate.clone(),
                auth.clone(),
            ))
            .max_decoding_message_size(SMALL_MESSAGE),
        )
        .add_service(
            TrustServer::new(trust_service::TrustService::new(ca.clone(), auth.clone()))
                .max_decoding_message_size(CA_MESSAGE),
        )
        .add_service(
            CertificateAuthorityServer::new(ca_service::CaService::new(
                ca,
                auth,
                gate,
                recorders.refusals.clone(),
                recorders.metrics.clone(),
            ))
            .max_decoding_message_size(CA_MESSAGE),
        );
    Ok(routes.routes().prepare())
}

/// The gRPC health service, every govtrust service reported serving.
async fn health()
-> tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health> {
    let (health, service) = tonic_health::server::health_reporter();
    health
        .set_serving::<kms_pb::key_management_server::KeyManagementServer<kms_service::KeyService>>(
        )
        .await;
    health
        .set_serving::<CertificateAuthorityServer<ca_service::CaService>>()
        .await;
    health
        .set_serving::<AuditLogServer<audit_service::AuditService>>()
        .await;
    service
}

fn announce(layout: &Layout, options: &Options, kms: &Kms, http: (SocketAddr, &PublicUrl)) {
    let sealed = if kms.is_sealed() {
        "sealed: unseal with `govtrust unseal --share FILE`"
    } else {
        "unsealed"
    };
    // The "listening" line comes last: scripts wait for it, and then find the HTTP port.
    let (address, public_url) = http;
    println!(
        "HTTP for relying parties on http://{address} (CRLs, OCSP, CA certificates, metrics); \
         certificates name {}",
        public_url.join("/")
    );
    println!("govtrust listening on {} ({sealed})", options.config.listen);
    println!("CA bundle:  {}", layout.ca_bundle().display());
    println!("Root CA:    {}", layout.root_certificate().display());
    if options.dev {
        for role in ["system-admin", "security-admin", "audit-admin"] {
            println!(
                "{role:<15} credentials in {} (dev mode: keys on local disk)",
                layout.admin(role).display()
            );
        }
    }
}

/// Dev mode: creates the deployment on first start, keeping the shares on local disk; its CA
/// certificates point to `public_url`.
fn prepare_dev(layout: &Layout, public_url: &PublicUrl) -> anyhow::Result<()> {
    warn_dev(layout);
    if layout.complete_marker().exists() {
        return Ok(());
    }
    let occupied = std::fs::read_dir(layout.root()).is_ok_and(|mut dir| dir.next().is_some());
    if occupied {
        anyhow::bail!(
            "dev mode: {} holds files but no complete deployment; govtrust deletes nothing: \
             remove it yourself or choose another --data",
            layout.root().display()
        );
    }
    let options = init::Options::dev(layout, Some(public_url.to_string()));
    init::create_complete(layout, &options)?;
    println!(
        "dev mode: created a new deployment in {}",
        layout.root().display()
    );
    Ok(())
}

fn warn_dev(layout: &Layout) {
    let line = "=".repeat(78);
    eprintln!("{line}");
    eprintln!("WARNING: DEVELOPMENT MODE. The master-key shares are kept on local disk in");
    eprintln!("  {}", layout.dev_unseal().display());
    eprintln!("and the server unseals itself from them, and the administrators' private keys");
    eprintln!("are kept unencrypted in");
    eprintln!("  {}", layout.root().join("admin").display());
    eprintln!("Anyone who can read these directories holds every key and every role.");
    eprintln!("Never use --dev for real keys or certificates.");
    eprintln!("{line}");
}

fn dev_unseal(layout: &Layout, kms: &Kms) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(layout.dev_unseal())
        .context("dev mode: cannot read the local unseal shares")?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .collect();
    files.sort();
    for file in files {
        if !kms.is_sealed() {
            break;
        }
        kms.unseal(&zeroize::Zeroizing::new(std::fs::read(&file)?))?;
    }
    anyhow::ensure!(
        !kms.is_sealed(),
        "dev mode: the local shares did not unseal the server"
    );
    Ok(())
}

async fn sweep_destructions(kms: Arc<Kms>) {
    let mut interval = tokio::time::interval(DESTRUCTION_SWEEP);
    loop {
        interval.tick().await;
        let kms = kms.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || destroy_due(&kms)).await {
            tracing::error!(%error, "key destruction sweep failed");
        }
    }
}

/// Destroys the keys whose waiting period ended, if the centre is unsealed.
fn destroy_due(kms: &Kms) {
    if kms.is_sealed() {
        return;
    }
    match kms.destroy_due() {
        Ok(destroyed) if !destroyed.is_empty() => {
            tracing::info!(
                count = destroyed.len(),
                "destroyed keys whose waiting period ended"
            );
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "key destruction sweep failed"),
    }
}

/// How often an expired unseal attempt's shares are looked for and forgotten.
const UNSEAL_SWEEP: Duration = Duration::from_secs(5);

/// Forgets the shares of expired unseal attempts, so they do not wait in memory for the next
/// unseal call.
async fn sweep_unseal_attempts(kms: Arc<Kms>) {
    let mut interval = tokio::time::interval(UNSEAL_SWEEP);
    loop {
        interval.tick().await;
        let kms = kms.clone();
        if let Ok(Err(error)) =
            tokio::task::spawn_blocking(move || kms.expire_unseal_attempt()).await
        {
            tracing::error!(%error, "unseal attempt expiry failed");
        }
    }
}

async fn shutdown() {
    crate::signals::terminated().await;
    tracing::info!("shutting down");
}
