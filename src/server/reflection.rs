//! gRPC server reflection (`grpc.reflection.v1`), for tools such as grpcurl.
//!
//! Outside `--dev` it answers only callers whose client certificate verifies against this CA:
//! the service list and message shapes are not for anonymous peers. In `--dev` it is open.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

use super::identity::Authenticator;
use super::limits::SMALL_MESSAGE;

/// The reflection service behind its gate.
pub fn service(
    auth: Arc<Authenticator>,
    dev: bool,
) -> anyhow::Result<InterceptedService<ServerReflectionServer<impl ServerReflection>, Gate>> {
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(govtrust_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?
        .max_decoding_message_size(SMALL_MESSAGE);
    Ok(InterceptedService::new(
        reflection,
        Gate { auth, open: dev },
    ))
}

/// Lets a call through if the server is in dev mode or its caller is authenticated.
#[derive(Clone)]
pub struct Gate {
    auth: Arc<Authenticator>,
    open: bool,
}

impl Interceptor for Gate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.open {
            return Ok(request);
        }
        let chain = request.peer_certs();
        match self.auth.principal(chain.as_deref().map(Vec::as_slice)) {
            Ok(_) => Ok(request),
            Err(refusal) => Err(Status::unauthenticated(format!(
                "reflection is served only to callers with a client certificate from this CA \
                 (outside --dev): {}",
                refusal.message()
            ))),
        }
    }
}
