//! Where relying parties find what a certificate points to, on the server's HTTP port: the
//! issuer's CRL (CRL distribution points), its OCSP responder and its certificate (authority
//! information access, RFC 5280 §4.2.2.1), under the public base URL.
//!
//! | what | URL |
//! |---|---|
//! | CRL distribution point | `{base}/crl/{issuer}.crl` |
//! | OCSP | `{base}/ocsp` |
//! | CA issuers | `{base}/ca/{issuer}.crt` |
//!
//! rcgen writes CRL distribution points itself; the authority information access extension
//! is encoded here with `der`.

use der::Encode;
use der::Sequence;
use der::asn1::{Ia5String, ObjectIdentifier};
use rcgen::{CertificateParams, CrlDistributionPoint, CustomExtension};

use crate::Error;
use crate::issuer::Authority;

/// id-pe-authorityInfoAccess.
const AUTHORITY_INFO_ACCESS: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 1, 1];
/// id-ad-ocsp.
const ID_AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
/// id-ad-caIssuers.
const ID_AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");

/// `AccessDescription`: the location is a `uniformResourceIdentifier [6] IA5String`.
#[derive(Sequence)]
struct AccessDescription {
    access_method: ObjectIdentifier,
    #[asn1(context_specific = "6", tag_mode = "IMPLICIT")]
    access_location: Ia5String,
}

/// What a certificate issued by `issuer` points to.
pub(crate) struct Locations<'a> {
    /// The public base URL of the HTTP port, without a trailing `/`.
    pub base: &'a str,
    pub issuer: Authority,
    /// Whether to name the OCSP responder (leaves; the issuing CAs name only their issuer).
    pub ocsp: bool,
}

impl Locations<'_> {
    /// Adds the CRL distribution point and the authority information access to `params`.
    pub(crate) fn apply(&self, params: &mut CertificateParams) -> Result<(), Error> {
        let issuer = self.issuer.name();
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![format!("{}/crl/{issuer}.crl", self.base)],
        }];
        params.custom_extensions.push(self.access()?);
        Ok(())
    }

    /// The authority information access extension.
    fn access(&self) -> Result<CustomExtension, Error> {
        let mut descriptions = Vec::new();
        if self.ocsp {
            descriptions.push(description(ID_AD_OCSP, format!("{}/ocsp", self.base))?);
        }
        let issuer = format!("{}/ca/{}.crt", self.base, self.issuer.name());
        descriptions.push(description(ID_AD_CA_ISSUERS, issuer)?);
        let der = descriptions
            .to_der()
            .map_err(|e| Error::invalid("base_url", format!("cannot encode the URLs: {e}")))?;
        Ok(CustomExtension::from_oid_content(
            &AUTHORITY_INFO_ACCESS,
            der,
        ))
    }
}

fn description(method: ObjectIdentifier, url: String) -> Result<AccessDescription, Error> {
    let location = Ia5String::new(&url)
        .map_err(|_| Error::invalid("base_url", format!("{url:?} is not an ASCII URL")))?;
    Ok(AccessDescription {
        access_method: method,
        access_location: location,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    #[test]
    fn a_certificate_names_its_issuers_crl_ocsp_and_certificate() {
        let mut params = CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        let locations = Locations {
            base: "http://127.0.0.1:8080",
            issuer: Authority::Extranet,
            ocsp: true,
        };
        locations.apply(&mut params).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let mut seen = Vec::new();
        for extension in cert.extensions() {
            match extension.parsed_extension() {
                ParsedExtension::AuthorityInfoAccess(aia) => {
                    for access in &aia.accessdescs {
                        if let GeneralName::URI(uri) = access.access_location {
                            seen.push(format!("{} {uri}", access.access_method));
                        }
                    }
                }
                ParsedExtension::CRLDistributionPoints(points) => {
                    seen.push(
                        format!("{points:?}")
                            .contains("/crl/extranet.crl")
                            .to_string(),
                    );
                }
                _ => {}
            }
        }
        assert_eq!(
            seen,
            [
                "true",
                "1.3.6.1.5.5.7.48.1 http://127.0.0.1:8080/ocsp",
                "1.3.6.1.5.5.7.48.2 http://127.0.0.1:8080/ca/extranet.crt"
            ]
        );
    }
}
