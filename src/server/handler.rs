//! The shape most gRPC handlers share: who calls, whether they may, the domain work off the
//! async workers, the answer.
//!
//! Handlers with a flow of their own (dual control, the key-usage ledger, refused enrollments,
//! calls without a certificate) use [`blocking`] alone.

use tonic::{Request, Response, Status};

use super::identity::{Authenticator, Principal};

/// Answers `request`: authenticates its caller, lets `admit` authorize the caller and parse
/// the message (on the async worker: no store writes there), then runs `work` with both off
/// the async workers. Each step's refusal is the answer; `work` maps its domain's errors.
pub async fn answer<M, A, T>(
    auth: &Authenticator,
    request: Request<M>,
    admit: impl FnOnce(&Principal, M) -> Result<A, Status>,
    work: impl FnOnce(Principal, A) -> Result<T, Status> + Send + 'static,
) -> Result<Response<T>, Status>
where
    A: Send + 'static,
    T: Send + 'static,
{
    let mut request = request;
    let principal = auth.take(&mut request)?;
    let admitted = admit(&principal, request.into_inner())?;
    blocking(move || work(principal, admitted))
        .await
        .map(Response::new)
}

/// Runs domain work that awaits its commit (`Ca::enroll_async`, `Ca::renew_async`) on the
/// async workers, in a task of its own: a client that hangs up drops only the wait, never the
/// work between its commit and what the CA learns from it.
pub async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(work)
        .await
        .map_err(|error| Status::internal(format!("worker failed: {error}")))
}

/// Runs blocking domain work (store commits wait for the group fsync) off the async workers.
pub async fn blocking<T, F>(work: F) -> Result<T, Status>
where
    F: FnOnce() -> Result<T, Status> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Status::internal(format!("worker failed: {error}")))?
}
