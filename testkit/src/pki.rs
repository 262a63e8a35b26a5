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

/// The fleet broker as shipped (`deploy/mosquitto/footfall.conf`), on a free loopback port:
/// its server certificate for 127.0.0.1 is issued by the fleet CA in `ca_dir` into
/// `broker_dir`, with the CA's revocation list and the access rules of a fleet with no
/// client yet (enrol into `broker_dir/dynamic-security.json` before starting it).
pub fn prepare_fleet_broker(ca_dir: &Path, broker_dir: &Path) {
    issue(
        ca_dir,
        broker_dir,
        "broker",
        "broker",
        Use::Server(&["127.0.0.1".into()]),
        2,
    )
    .expect("the broker's certificate");
    fleet::pki::write_crl(ca_dir, &broker_dir.join("ca.crl")).expect("the revocation list");
    fleet::dynsec::create(&broker_dir.join("dynamic-security.json")).expect("the access rules");
}

/// Starts the shipped broker configuration with the files [`prepare_fleet_broker`] wrote.
pub fn start_fleet_broker(broker_dir: &Path) -> crate::Mosquitto {
    let shipped =
        std::fs::read_to_string(deploy("mosquitto/footfall.conf")).expect("footfall.conf");
    let dir = broker_dir.display().to_string();
    crate::Mosquitto::start_config(|_, port| {
        shipped
            .replace("/etc/mosquitto/footfall", &dir)
            .replace("listener 8883", &format!("listener {port} 127.0.0.1"))
    })
}

/// A file of the repository's `deploy/` (shipped configuration).
pub fn deploy(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(rel)
}
