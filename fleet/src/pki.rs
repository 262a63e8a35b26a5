//! The fleet's certificates, made with `openssl` (Debian's, a tool we did not write): ECDSA
//! P-256 keys, a fleet CA, server certificates for brokers and client certificates whose
//! common name is the identity the broker's ACL knows (`<site>/<sensor>`, `collector-<name>`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// `openssl req` options for a new ECDSA P-256 key, unencrypted (the services read it
/// unattended; it is mode 0600).
const NEW_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// What a certificate is for.
pub enum Use<'a> {
    /// A TLS server (a broker) reached at these IP addresses or DNS names.
    Server(&'a [String]),
    /// A TLS client (a sensor or a collector).
    Client,
}

/// Creates the fleet CA in `dir`: `ca.key` (mode 0600) and `ca.crt`, valid for `days`.
/// Refuses to overwrite one.
pub fn create_ca(dir: &Path, name: &str, days: u32) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if dir.join("ca.key").exists() {
        bail!("{} already holds a CA (ca.key)", dir.display());
    }
    let days = days.to_string();
    let subject = format!("/CN={}", escape(name));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            NEW_KEY[0],
            NEW_KEY[1],
            NEW_KEY[2],
            NEW_KEY[3],
            NEW_KEY[4],
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            &days,
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    )?;
    private(&dir.join("ca.key"))
}

/// Issues `<stem>.crt` and `<stem>.key` (mode 0600) in `out` for the identity `cn`, signed
/// by the CA in `ca_dir`, valid for `days`; `ca.crt` is copied beside them.
pub fn issue(
    ca_dir: &Path,
    out: &Path,
    stem: &str,
    cn: &str,
    usage: Use<'_>,
    days: u32,
) -> anyhow::Result<()> {
    for f in ["ca.crt", "ca.key"] {
        if !ca_dir.join(f).exists() {
            bail!(
                "{} has no {f}: create the CA first (footfall-fleet ca)",
                ca_dir.display()
            );
        }
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let (key, csr, crt, ext) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.crt"),
        format!("{stem}.ext"),
    );
    let mut extensions = String::from("basicConstraints=CA:FALSE\n");
    match usage {
        Use::Server(hosts) => {
            if hosts.is_empty() {
                bail!("a server certificate needs at least one host name or address");
            }
            let names: Vec<String> = hosts
                .iter()
                .map(|h| match h.parse::<std::net::IpAddr>() {
                    Ok(_) => format!("IP:{h}"),
                    Err(_) => format!("DNS:{h}"),
                })
                .collect();
            extensions.push_str("extendedKeyUsage=serverAuth\n");
            extensions.push_str(&format!("subjectAltName={}\n", names.join(",")));
        }
        Use::Client => extensions.push_str("extendedKeyUsage=clientAuth\n"),
    }
    fs::write(out.join(&ext), extensions)?;
    let subject = format!("/CN={}", escape(cn));
    openssl(
        out,
        &[
            "req", NEW_KEY[0], NEW_KEY[1], NEW_KEY[2], NEW_KEY[3], NEW_KEY[4], "-keyout", &key,
            "-out", &csr, "-subj", &subject,
        ],
    )?;
    private(&out.join(&key))?;
    let (ca_crt, ca_key) = (ca_dir.join("ca.crt"), ca_dir.join("ca.key"));
    let serial = ca_dir.join("ca.srl");
    let days = days.to_string();
    openssl(
        out,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            path(&ca_crt)?,
            "-CAkey",
            path(&ca_key)?,
            "-CAserial",
            path(&serial)?,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            &days,
            "-extfile",
            &ext,
        ],
    )?;
    fs::remove_file(out.join(&csr))?;
    fs::remove_file(out.join(&ext))?;
    if out.join("ca.crt") != ca_crt {
        fs::copy(&ca_crt, out.join("ca.crt"))?;
    }
    Ok(())
}

/// `/` and `,` and `+` are special in openssl's `-subj`; identities contain `/`.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc = matches!(c, '/' | ',' | '+' | '=' | '\\');
            esc.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn path(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

fn private(p: &Path) -> anyhow::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", p.display()))
}

fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (is it installed?)")?;
    if !o.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(())
}
