//! A throwaway PKI, made by the fleet's own provisioning code (`fleet::pki`, openssl).

use std::path::Path;

use fleet::pki::{create_ca, issue, Use};

/// Writes a throwaway CA (`ca.crt`, `ca.key`) and a server certificate for 127.0.0.1 signed
/// by it (`server.crt`, `server.key`) into `dir`, valid for two days.
pub fn make_test_pki(dir: &Path) {
    create_ca(dir, "footfall-test-ca", 2).expect("a test CA");
    issue(
        dir,
        dir,
        "server",
        "127.0.0.1",
        Use::Server(&["127.0.0.1".into()]),
        2,
    )
    .expect("a server certificate");
}
