//! `govtrust kms key ...`: the key-management centre from the command line.
//!
//! Binary values (ciphertexts, signatures) are printed and read as standard base64.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand, ValueEnum};
use govtrust_proto::kms::{self as pb, key_management_client::KeyManagementClient};
use tonic::transport::Channel;

use super::connection::Connection;
use super::text::{print_json, status_error, timestamp};

#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Print this centre's X25519 import wrapping key, base64: give it to a centre that
    /// exports a key to this one.
    WrappingKey {
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key (it starts active unless --pre-active).
    Create(CreateArgs),
    /// List keys.
    List {
        #[command(flatten)]
        connection: Connection,
    },
    /// Show a key's metadata.
    Show(KeyArg),
    /// Make a new primary version; old versions still decrypt and verify.
    Rotate(KeyArg),
    /// Encrypt data (from --plaintext or --in) and print the ciphertext, base64.
    Encrypt(EncryptArgs),
    /// Decrypt a base64 ciphertext (from --ciphertext or --in) to stdout or --out.
    Decrypt(DecryptArgs),
    /// Sign data and print the signature, base64.
    Sign(SignArgs),
    /// Verify a base64 signature over data.
    Verify(VerifyArgs),
    /// Print a key's public key, PEM.
    PublicKey(KeyArg),
    /// Change a key's state.
    /// A key you do not own changes only with a second officer's approval: the first run
    /// files the request, the run with --approval after it was approved changes the key.
    State(StateArgs),
    /// Schedule a key's destruction after a waiting period, or with --now destroy it at once
    /// under dual control (the first run files the request, the run with --approval destroys).
    Destroy(DestroyArgs),
    /// Cancel a scheduled destruction.
    CancelDestroy(KeyArg),
    /// Export an exportable key wrapped (HPKE) to a centre's X25519 wrapping key, as a
    /// single-use JSON bundle that only the identity `--to` may import (`kms key import`), once,
    /// before it expires. The recipient, source, policy and dates are bound into the bundle.
    Export(ExportArgs),
    /// Import a key bundle written by `kms key export`: only its recipient can, once. The copy
    /// belongs to you and is exportable only with --exportable on a bundle that allows it.
    Import(ImportArgs),
}

/// `kms key create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, value_enum)]
    algorithm: AlgorithmArg,
    #[command(flatten)]
    options: KeyOptions,
    #[arg(long)]
    pre_active: bool,
    #[command(flatten)]
    connection: Connection,
}

/// `kms key encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    #[command(flatten)]
    key: KeyArg,
    #[command(flatten)]
    input: Input,
    /// Additional authenticated data (text); Decrypt needs the same.
    #[arg(long, default_value = "")]
    aad: String,
}

/// `kms key decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    #[arg(long, conflicts_with = "input")]
    ciphertext: Option<String>,
    /// File holding the base64 ciphertext (raw bytes with --binary).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// The --in file holds the ciphertext's raw bytes, e.g. the GM/T 0009 DER that
    /// `openssl pkeyutl -encrypt` writes for an SM2 key.
    #[arg(long, requires = "input")]
    binary: bool,
    /// The key to decrypt with: optional for govtrust's own ciphertexts (they name their key),
    /// needed for SM2 ciphertexts, which name none.
    #[arg(long)]
    key_id: Option<String>,
    #[arg(long, default_value = "")]
    aad: String,
    /// Write the plaintext to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

/// `kms key sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    key: KeyArg,
    #[command(flatten)]
    input: Input,
}

/// `kms key verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    key: KeyArg,
    #[command(flatten)]
    input: Input,
    #[arg(long)]
    signature: String,
}

/// `kms key state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(flatten)]
    key: KeyArg,
    #[arg(value_enum)]
    change: ChangeArg,
    #[arg(long, default_value = "")]
    reason: String,
    /// Carry out this approved request (ap-…); give the same change and reason.
    #[arg(long)]
    approval: Option<String>,
}

/// `kms key destroy`.
#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    key: KeyArg,
    /// Waiting period in days, 7 to 30.
    #[arg(long, default_value_t = 30, conflicts_with = "now")]
    days: u32,
    /// Destroy at once, without the waiting period (needs a second officer's approval).
    #[arg(long)]
    now: bool,
    /// Why; recorded with an immediate destruction and its approval.
    #[arg(long, default_value = "", requires = "now")]
    reason: String,
    /// Carry out this approved destruction request (ap-…): an immediate one, or one of a
    /// key you do not own.
    #[arg(long)]
    approval: Option<String>,
}

/// `kms key export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    key: KeyArg,
    /// The one identity (SPIFFE URI) that may import the bundle; it will own the copy.
    #[arg(long)]
    to: String,
    /// The X25519 wrapping key of the centre the bundle goes to, base64 (`kms wrapping-key`
    /// there; this centre's own for a copy here).
    #[arg(long)]
    recipient: String,
    /// Version to export; default: the primary version.
    #[arg(long = "key-version", default_value_t = 0)]
    key_version: u32,
    /// Let the imported copy be exported again (default: it cannot).
    #[arg(long)]
    allow_reexport: bool,
    /// How long the bundle can be imported, in hours (1 to 720).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=720))]
    valid_for_hours: u32,
    /// For an AES key going to another centre: how many encryptions the copy may make
    /// there, given up by this key's version (default: half of what it has left). The two
    /// together never exceed one key's random-nonce limit.
    #[arg(long)]
    encryptions: Option<u64>,
    /// Where to write the bundle.
    #[arg(long)]
    out: PathBuf,
}

/// `kms key import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The bundle file.
    #[arg(long = "in")]
    input: PathBuf,
    #[command(flatten)]
    options: KeyOptions,
    #[command(flatten)]
    connection: Connection,
}

/// What a new key (created or imported) is allowed and for whom.
#[derive(Debug, Args)]
pub struct KeyOptions {
    /// Allow wrapped export to a recipient (cannot be changed later).
    #[arg(long)]
    pub exportable: bool,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Identity allowed to use the key (security administrator only); default: you.
    #[arg(long)]
    pub owner: Option<String>,
}

/// A key id and the connection.
#[derive(Debug, Args)]
pub struct KeyArg {
    /// Key id (k-...).
    pub key_id: String,
    #[command(flatten)]
    pub connection: Connection,
}

/// Data given inline or from a file.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Input {
    /// The data as text.
    #[arg(long)]
    pub plaintext: Option<String>,
    /// A file with the data.
    #[arg(long = "in")]
    pub file: Option<PathBuf>,
}

impl Input {
    fn bytes(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.plaintext, &self.file) {
            (Some(text), _) => Ok(text.clone().into_bytes()),
            (None, Some(file)) => {
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
            }
            (None, None) => anyhow::bail!("give --plaintext or --in"),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    #[value(name = "aes-256-gcm")]
    Aes256Gcm,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    /// SM4-GCM (national suite).
    #[value(name = "sm4-gcm")]
    Sm4Gcm,
    /// SM2 signatures with SM3 (national suite).
    #[value(name = "sm2-sm3")]
    Sm2Sm3,
    /// SM2 public-key encryption (national suite).
    #[value(name = "sm2-encrypt")]
    Sm2Encrypt,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ChangeArg {
    Activate,
    Suspend,
    Resume,
    Deactivate,
    Compromised,
}

/// Shows the key a call under dual control changed, or the request it filed instead.
/// What a call under dual control answered: the key it acted on, or the request it filed.
enum Acted {
    Key(pb::Key),
    Pending(govtrust_proto::approval::Approval),
}

/// Reads one of the three dual-control answers' `oneof outcome` into an [`Acted`].
macro_rules! acted {
    ($module:ident, $outcome:expr) => {
        match $outcome {
            Some(pb::$module::Outcome::Key(key)) => Some(Acted::Key(key)),
            Some(pb::$module::Outcome::PendingApproval(approval)) => Some(Acted::Pending(approval)),
            None => None,
        }
    };
}

fn acted(connection: &Connection, outcome: Option<Acted>, again: &str) -> anyhow::Result<()> {
    match outcome {
        Some(Acted::Pending(pending)) => {
            super::approval::pending(connection, &pending, again);
            Ok(())
        }
        Some(Acted::Key(key)) => show_key(connection, Some(key)),
        None => anyhow::bail!("the server answered neither a key nor a pending approval"),
    }
}

async fn client(connection: &Connection) -> anyhow::Result<KeyManagementClient<Channel>> {
    Ok(KeyManagementClient::new(connection.channel().await?))
}

pub async fn run(command: KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::Key(command) => key(command).await,
        KmsCommand::WrappingKey { connection } => {
            let mut client = client(&connection).await?;
            let key = client
                .get_wrapping_key(pb::GetWrappingKeyRequest {})
                .await
                .map_err(status_error)?;
            outln!("{}", B64.encode(key.into_inner().public_key));
            Ok(())
        }
    }
}

async fn key(command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Create(args) => create(args).await,
        KeyCommand::List { connection } => list(&connection).await,
        KeyCommand::Show(key) => show(key).await,
        KeyCommand::Rotate(key) => rotate(key).await,
        KeyCommand::Encrypt(args) => encrypt(args).await,
        KeyCommand::Decrypt(args) => decrypt(args).await,
        KeyCommand::Sign(args) => sign(args).await,
        KeyCommand::Verify(args) => verify(args).await,
        KeyCommand::PublicKey(key) => public_key(key).await,
        KeyCommand::State(args) => set_state(args).await,
        KeyCommand::Destroy(args) if args.now => destroy_now(args).await,
        KeyCommand::Destroy(args) => schedule_destruction(args).await,
        KeyCommand::CancelDestroy(key) => cancel_destruction(key).await,
        KeyCommand::Export(args) => export(args).await,
        KeyCommand::Import(args) => import(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let CreateArgs {
        algorithm,
        options,
        pre_active,
        connection,
    } = args;
    let request = pb::CreateKeyRequest {
        algorithm: algorithm_message(algorithm) as i32,
        exportable: options.exportable,
        description: options.description,
        owner: options.owner.unwrap_or_default(),
        pre_active,
    };
    let response = client(&connection).await?.create_key(request).await;
    show_key(
        &connection,
        response.map_err(status_error)?.into_inner().key,
    )
}

async fn show(KeyArg { key_id, connection }: KeyArg) -> anyhow::Result<()> {
    let request = pb::GetKeyRequest { key_id };
    let response = client(&connection).await?.get_key(request).await;
    show_key(
        &connection,
        response.map_err(status_error)?.into_inner().key,
    )
}

async fn rotate(KeyArg { key_id, connection }: KeyArg) -> anyhow::Result<()> {
    let request = pb::RotateKeyRequest { key_id };
    let response = client(&connection).await?.rotate_key(request).await;
    show_key(
        &connection,
        response.map_err(status_error)?.into_inner().key,
    )
}

async fn public_key(KeyArg { key_id, connection }: KeyArg) -> anyhow::Result<()> {
    let request = pb::GetPublicKeyRequest { key_id, version: 0 };
    let response = client(&connection).await?.get_public_key(request).await;
    out!(
        "{}",
        response.map_err(status_error)?.into_inner().public_key_pem
    );
    Ok(())
}

async fn set_state(args: StateArgs) -> anyhow::Result<()> {
    let StateArgs {
        key,
        change,
        reason,
        approval,
    } = args;
    let request = pb::SetKeyStateRequest {
        key_id: key.key_id,
        change: change_message(change) as i32,
        reason,
        approval_id: approval.unwrap_or_default(),
    };
    let response = client(&key.connection).await?.set_key_state(request).await;
    let response = response.map_err(status_error)?.into_inner();
    let again = "the same `govtrust kms key state` command";
    let outcome = acted!(set_key_state_response, response.outcome);
    acted(&key.connection, outcome, again)
}

async fn destroy_now(args: DestroyArgs) -> anyhow::Result<()> {
    let DestroyArgs {
        key,
        reason,
        approval,
        ..
    } = args;
    let request = pb::DestroyKeyRequest {
        key_id: key.key_id,
        reason,
        approval_id: approval.unwrap_or_default(),
    };
    let response = client(&key.connection).await?.destroy_key(request).await;
    let response = response.map_err(status_error)?.into_inner();
    let again = "the same `govtrust kms key destroy --now` command";
    let outcome = acted!(destroy_key_response, response.outcome);
    acted(&key.connection, outcome, again)
}

async fn schedule_destruction(args: DestroyArgs) -> anyhow::Result<()> {
    let DestroyArgs {
        key,
        days,
        approval,
        ..
    } = args;
    let request = pb::ScheduleKeyDestructionRequest {
        key_id: key.key_id,
        waiting_period_days: days,
        approval_id: approval.unwrap_or_default(),
    };
    let mut client = client(&key.connection).await?;
    let response = client.schedule_key_destruction(request).await;
    let response = response.map_err(status_error)?.into_inner();
    let again = "the same `govtrust kms key destroy` command";
    let outcome = acted!(schedule_key_destruction_response, response.outcome);
    acted(&key.connection, outcome, again)
}

async fn cancel_destruction(KeyArg { key_id, connection }: KeyArg) -> anyhow::Result<()> {
    let request = pb::CancelKeyDestructionRequest { key_id };
    let mut client = client(&connection).await?;
    let response = client.cancel_key_destruction(request).await;
    show_key(
        &connection,
        response.map_err(status_error)?.into_inner().key,
    )
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let request = import_request(&args.input, args.options)?;
    let response = client(&args.connection).await?.import_key(request).await;
    show_key(
        &args.connection,
        response.map_err(status_error)?.into_inner().key,
    )
}

async fn encrypt(EncryptArgs { key, input, aad }: EncryptArgs) -> anyhow::Result<()> {
    let request = pb::EncryptRequest {
        key_id: key.key_id,
        plaintext: input.bytes()?.into(),
        aad: aad.into_bytes().into(),
    };
    let response = client(&key.connection).await?.encrypt(request).await;
    let out = response.map_err(status_error)?.into_inner();
    let text = B64.encode(&out.ciphertext);
    if key.connection.json {
        print_json(
            &serde_json::json!({"ciphertext": text, "key_id": out.key_id, "version": out.version}),
        );
    } else {
        outln!("{text}");
    }
    Ok(())
}

async fn decrypt(args: DecryptArgs) -> anyhow::Result<()> {
    let ciphertext = match (&args.input, args.binary) {
        (Some(file), true) => {
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
        }
        _ => {
            let text = text_or_file(args.ciphertext, args.input.as_deref(), "--ciphertext")?;
            B64.decode(text.trim())
                .context("the ciphertext is not base64 (give --binary for a file of raw bytes)")?
        }
    };
    let request = pb::DecryptRequest {
        ciphertext: ciphertext.into(),
        aad: args.aad.into_bytes().into(),
        key_id: args.key_id.unwrap_or_default(),
    };
    let response = client(&args.connection).await?.decrypt(request).await;
    write_output(
        args.out,
        &response.map_err(status_error)?.into_inner().plaintext,
    )
}

async fn sign(SignArgs { key, input }: SignArgs) -> anyhow::Result<()> {
    let request = pb::SignRequest {
        key_id: key.key_id,
        message: input.bytes()?,
    };
    let response = client(&key.connection).await?.sign(request).await;
    outln!(
        "{}",
        B64.encode(response.map_err(status_error)?.into_inner().signature)
    );
    Ok(())
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs {
        key,
        input,
        signature,
    } = args;
    let request = pb::VerifyRequest {
        key_id: key.key_id,
        message: input.bytes()?,
        signature: B64
            .decode(signature.trim())
            .context("the signature is not base64")?,
        version: 0,
    };
    let response = client(&key.connection).await?.verify(request).await;
    anyhow::ensure!(
        response.map_err(status_error)?.into_inner().valid,
        "signature is NOT valid"
    );
    outln!("signature is valid");
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let request = pb::WrapKeyForRecipientRequest {
        key_id: args.key.key_id.clone(),
        version: args.key_version,
        recipient_public_key: B64
            .decode(args.recipient.trim())
            .context("--recipient is not base64")?,
        recipient: args.to,
        allow_reexport: args.allow_reexport,
        valid_for_seconds: args.valid_for_hours.saturating_mul(3600),
        encryptions: args.encryptions,
    };
    write_bundle(&args.key.connection, request, &args.out).await
}

/// Asks the server to wrap the key of `request` and writes the bundle to `out`.
async fn write_bundle(
    connection: &Connection,
    request: pb::WrapKeyForRecipientRequest,
    out: &Path,
) -> anyhow::Result<()> {
    let response = client(connection)
        .await?
        .wrap_key_for_recipient(request)
        .await;
    let wrapped = response.map_err(status_error)?.into_inner();
    let terms = wrapped
        .terms
        .context("the server returned no bundle terms")?;
    let file = BundleFile::new(&terms, &wrapped.encapsulated_key, &wrapped.ciphertext)?;
    crate::files::write_public(out, &serde_json::to_string_pretty(&file)?)?;
    outln!(
        "wrapped {} version {} to {} as bundle {}: only {} can import it, once, until {}",
        file.key_id,
        file.version,
        out.display(),
        file.bundle_id,
        file.recipient,
        timestamp(terms.expires_at.as_ref())
    );
    Ok(())
}

/// A value given inline (`flag`) or in a file.
fn text_or_file(inline: Option<String>, file: Option<&Path>, flag: &str) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(text), _) => Ok(text),
        (None, Some(file)) => {
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
        }
        (None, None) => anyhow::bail!("give {flag} or --in"),
    }
}

/// The `format` field of an export bundle.
const BUNDLE_FORMAT: &str = "govtrust-wrapped-key-v3";
/// Bound bundles from before their terms carried the copy's encryption allotment.
const UNALLOTTED_FORMAT: &str = "govtrust-wrapped-key-v2";
/// The format of bundles that bound no recipient, refused since.
const UNBOUND_FORMAT: &str = "govtrust-wrapped-key-v1";

/// The file `kms key export` writes and `kms key import` reads: the bundle's terms (bound into
/// the HPKE info, so none can be changed) and the wrapped key, base64.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleFile {
    format: String,
    bundle_id: String,
    source_centre: String,
    key_id: String,
    version: u32,
    algorithm: String,
    exporter: String,
    recipient: String,
    exportable: bool,
    encryptions: u64,
    exported_at_ms: u64,
    expires_at_ms: u64,
    encapsulated_key: String,
    ciphertext: String,
}

impl BundleFile {
    fn new(
        terms: &pb::BundleTerms,
        encapsulated_key: &[u8],
        ciphertext: &[u8],
    ) -> anyhow::Result<BundleFile> {
        Ok(BundleFile {
            format: BUNDLE_FORMAT.to_owned(),
            bundle_id: terms.bundle_id.clone(),
            source_centre: terms.source_centre.clone(),
            key_id: terms.source_key_id.clone(),
            version: terms.source_version,
            algorithm: algorithm_name(terms.algorithm()).to_owned(),
            exporter: terms.exporter.clone(),
            recipient: terms.recipient.clone(),
            exportable: terms.exportable,
            encryptions: terms.encryptions,
            exported_at_ms: unix_ms(terms.exported_at.as_ref())?,
            expires_at_ms: unix_ms(terms.expires_at.as_ref())?,
            encapsulated_key: B64.encode(encapsulated_key),
            ciphertext: B64.encode(ciphertext),
        })
    }

    /// Reads a bundle file, refusing other formats by name.
    fn read(input: &Path) -> anyhow::Result<BundleFile> {
        let text = std::fs::read_to_string(input)
            .with_context(|| format!("cannot read {}", input.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).context("the bundle is not JSON")?;
        match value["format"].as_str() {
            Some(BUNDLE_FORMAT) => {}
            Some(UNBOUND_FORMAT) => anyhow::bail!(
                "{} is a {UNBOUND_FORMAT} bundle, which names no recipient and could be imported \
                 by anyone, any number of times: it is refused; ask its exporter to export the \
                 key again (`kms key export --to <your identity>`)",
                input.display()
            ),
            Some(UNALLOTTED_FORMAT) => anyhow::bail!(
                "{} is a {UNALLOTTED_FORMAT} bundle, from a release whose bundles did not carry \
                 the copy's share of the key's encryptions: it is refused; ask its exporter to \
                 export the key again",
                input.display()
            ),
            _ => anyhow::bail!("{} is not a {BUNDLE_FORMAT} bundle", input.display()),
        }
        serde_json::from_value(value).context("the bundle's fields are not as expected")
    }

    fn terms(&self) -> anyhow::Result<pb::BundleTerms> {
        let algorithm = pb::KeyAlgorithm::from_str_name(&algorithm_enum_name(&self.algorithm))
            .with_context(|| format!("unknown algorithm {:?} in the bundle", self.algorithm))?;
        Ok(pb::BundleTerms {
            bundle_id: self.bundle_id.clone(),
            source_centre: self.source_centre.clone(),
            source_key_id: self.key_id.clone(),
            source_version: self.version,
            algorithm: algorithm as i32,
            exporter: self.exporter.clone(),
            recipient: self.recipient.clone(),
            exportable: self.exportable,
            encryptions: self.encryptions,
            exported_at: Some(from_unix_ms(self.exported_at_ms)),
            expires_at: Some(from_unix_ms(self.expires_at_ms)),
        })
    }
}

/// Milliseconds since the Unix epoch of a timestamp the server sent.
fn unix_ms(at: Option<&prost_types::Timestamp>) -> anyhow::Result<u64> {
    let at = at.context("the server returned a bundle without its dates")?;
    let at = SystemTime::try_from(*at).context("the server returned an invalid date")?;
    let ms = at.duration_since(SystemTime::UNIX_EPOCH)?.as_millis();
    Ok(u64::try_from(ms)?)
}

fn from_unix_ms(ms: u64) -> prost_types::Timestamp {
    (SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms)).into()
}

fn import_request(input: &Path, options: KeyOptions) -> anyhow::Result<pb::ImportKeyRequest> {
    let bundle = BundleFile::read(input)?;
    let field = |name: &str, text: &str| -> anyhow::Result<Vec<u8>> {
        B64.decode(text)
            .with_context(|| format!("the bundle's {name} is not base64"))
    };
    let terms = bundle.terms()?;
    Ok(pb::ImportKeyRequest {
        algorithm: terms.algorithm,
        encapsulated_key: field("encapsulated_key", &bundle.encapsulated_key)?,
        ciphertext: field("ciphertext", &bundle.ciphertext)?,
        exportable: options.exportable,
        description: options.description,
        owner: options.owner.unwrap_or_default(),
        terms: Some(terms),
    })
}

/// The protobuf enum name of an algorithm's CLI name (`ed25519` -> `KEY_ALGORITHM_ED25519`).
fn algorithm_enum_name(name: &str) -> String {
    format!("KEY_ALGORITHM_{}", name.replace('-', "_").to_uppercase())
}

async fn list(connection: &Connection) -> anyhow::Result<()> {
    let mut client = client(connection).await?;
    let mut request = pb::ListKeysRequest {
        page_size: 0,
        page_token: String::new(),
    };
    let mut keys = Vec::new();
    loop {
        let page = client
            .list_keys(request.clone())
            .await
            .map_err(status_error)?
            .into_inner();
        keys.extend(page.keys);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    if connection.json {
        print_json(&serde_json::Value::Array(
            keys.iter().map(key_json).collect(),
        ));
        return Ok(());
    }
    outln!(
        "{:<34} {:<22} {:<12} {:>7}  OWNER",
        "KEY ID",
        "ALGORITHM",
        "STATE",
        "VERSION"
    );
    for key in &keys {
        outln!(
            "{:<34} {:<22} {:<12} {:>7}  {}",
            key.key_id,
            algorithm_name(key.algorithm()),
            state_name(key.state()),
            key.primary_version,
            key.owner
        );
    }
    Ok(())
}

fn write_output(out: Option<PathBuf>, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    match out {
        // The plaintext is as secret as the key that protected it: an owner-only file.
        Some(path) => {
            crate::files::write_file(&path, bytes, 0o600, crate::files::Replace::Atomically)
        }
        None => {
            // On a terminal the plaintext ends its line, so the prompt does not run on after
            // it; into a pipe or file it goes exactly as decrypted.
            let mut stdout = std::io::stdout().lock();
            let newline = std::io::IsTerminal::is_terminal(&stdout) && !bytes.ends_with(b"\n");
            let written = stdout
                .write_all(bytes)
                .and_then(|()| {
                    if newline {
                        stdout.write_all(b"\n")
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| stdout.flush());
            match written {
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}

fn terms_json(terms: &pb::BundleTerms) -> serde_json::Value {
    serde_json::json!({
        "bundle_id": terms.bundle_id,
        "source_centre": terms.source_centre,
        "source_key_id": terms.source_key_id,
        "source_version": terms.source_version,
        "algorithm": algorithm_name(terms.algorithm()),
        "exporter": terms.exporter,
        "recipient": terms.recipient,
        "exportable": terms.exportable,
        "encryptions": terms.encryptions,
        "exported_at": timestamp(terms.exported_at.as_ref()),
        "expires_at": timestamp(terms.expires_at.as_ref()),
    })
}

fn export_json(export: &pb::KeyExport) -> serde_json::Value {
    serde_json::json!({
        "terms": export.terms.as_ref().map(terms_json),
        "imported_as": export.imported_as,
        "imported_by": export.imported_by,
        "imported_at": timestamp(export.imported_at.as_ref()),
    })
}

fn key_json(key: &pb::Key) -> serde_json::Value {
    serde_json::json!({
        "created_by": key.created_by,
        "origin": if key.imported_from.is_some() { "imported" } else { "generated" },
        "imported_from": key.imported_from.as_ref().map(terms_json),
        "exports": key.exports.iter().map(export_json).collect::<Vec<_>>(),
        "key_id": key.key_id,
        "algorithm": algorithm_name(key.algorithm()),
        "state": state_name(key.state()),
        "primary_version": key.primary_version,
        "versions": key.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        "exportable": key.exportable,
        "owner": key.owner,
        "owner_generation": key.owner_generation,
        "description": key.description,
        "created_at": timestamp(key.created_at.as_ref()),
        "destruction_scheduled_at": timestamp(key.destruction_scheduled_at.as_ref()),
        "destroyed_at": timestamp(key.destroyed_at.as_ref()),
    })
}

fn show_key(connection: &Connection, key: Option<pb::Key>) -> anyhow::Result<()> {
    let key = key.context("the server returned no key")?;
    if connection.json {
        print_json(&key_json(&key));
        return Ok(());
    }
    outln!("key:        {}", key.key_id);
    outln!("algorithm:  {}", algorithm_name(key.algorithm()));
    outln!("state:      {}", state_name(key.state()));
    outln!(
        "version:    {} (of {})",
        key.primary_version,
        key.versions.len()
    );
    outln!("exportable: {}", key.exportable);
    outln!("owner:      {}", key.owner);
    if !key.created_by.is_empty() {
        outln!("created by: {}", key.created_by);
    }
    match &key.imported_from {
        Some(terms) => outln!(
            "origin:     imported from key {} version {} of centre {} (bundle {}, exported by {} at {})",
            terms.source_key_id,
            terms.source_version,
            terms.source_centre,
            terms.bundle_id,
            terms.exporter,
            timestamp(terms.exported_at.as_ref())
        ),
        None => outln!("origin:     generated"),
    }
    for export in &key.exports {
        show_export(export);
    }
    if key.destruction_scheduled_at.is_some() {
        outln!(
            "destroy at: {}",
            timestamp(key.destruction_scheduled_at.as_ref())
        );
    }
    if key.destroyed_at.is_some() {
        outln!("destroyed:  {}", timestamp(key.destroyed_at.as_ref()));
    }
    Ok(())
}

fn show_export(export: &pb::KeyExport) {
    let Some(terms) = &export.terms else {
        return;
    };
    let fate = match export.imported_as.as_str() {
        "" => format!(
            "not imported here; expires {}",
            timestamp(terms.expires_at.as_ref())
        ),
        copy => format!(
            "imported as {copy} at {}",
            timestamp(export.imported_at.as_ref())
        ),
    };
    let allotted = match terms.encryptions {
        0 => String::new(),
        n => format!(", {n} encryptions given"),
    };
    outln!(
        "exported:   bundle {} (version {}{allotted}) to {} at {}: {fate}",
        terms.bundle_id,
        terms.source_version,
        terms.recipient,
        timestamp(terms.exported_at.as_ref())
    );
}

fn algorithm_message(algorithm: AlgorithmArg) -> pb::KeyAlgorithm {
    match algorithm {
        AlgorithmArg::Aes256Gcm => pb::KeyAlgorithm::Aes256Gcm,
        AlgorithmArg::EcdsaP256 => pb::KeyAlgorithm::EcdsaP256Sha256,
        AlgorithmArg::EcdsaP384 => pb::KeyAlgorithm::EcdsaP384Sha384,
        AlgorithmArg::Ed25519 => pb::KeyAlgorithm::Ed25519,
        AlgorithmArg::Sm4Gcm => pb::KeyAlgorithm::Sm4Gcm,
        AlgorithmArg::Sm2Sm3 => pb::KeyAlgorithm::Sm2Sm3,
        AlgorithmArg::Sm2Encrypt => pb::KeyAlgorithm::Sm2Encrypt,
    }
}

fn change_message(change: ChangeArg) -> pb::KeyStateChange {
    match change {
        ChangeArg::Activate => pb::KeyStateChange::Activate,
        ChangeArg::Suspend => pb::KeyStateChange::Suspend,
        ChangeArg::Resume => pb::KeyStateChange::Resume,
        ChangeArg::Deactivate => pb::KeyStateChange::Deactivate,
        ChangeArg::Compromised => pb::KeyStateChange::MarkCompromised,
    }
}

fn algorithm_name(algorithm: pb::KeyAlgorithm) -> &'static str {
    match algorithm {
        pb::KeyAlgorithm::Aes256Gcm => "aes-256-gcm",
        pb::KeyAlgorithm::EcdsaP256Sha256 => "ecdsa-p256-sha256",
        pb::KeyAlgorithm::EcdsaP384Sha384 => "ecdsa-p384-sha384",
        pb::KeyAlgorithm::Ed25519 => "ed25519",
        pb::KeyAlgorithm::Sm4Gcm => "sm4-gcm",
        pb::KeyAlgorithm::Sm2Sm3 => "sm2-sm3",
        pb::KeyAlgorithm::Sm2Encrypt => "sm2-encrypt",
        pb::KeyAlgorithm::Unspecified => "unspecified",
    }
}

fn state_name(state: pb::KeyState) -> &'static str {
    match state {
        pb::KeyState::PreActive => "pre-active",
        pb::KeyState::Active => "active",
        pb::KeyState::Suspended => "suspended",
        pb::KeyState::Deactivated => "deactivated",
        pb::KeyState::Compromised => "compromised",
        pb::KeyState::Destroyed => "destroyed",
        pb::KeyState::Unspecified => "unspecified",
    }
}
