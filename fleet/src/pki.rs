//! The fleet's certificates, made with `openssl` (Debian's, a tool we did not write): ECDSA
//! P-256 keys, a fleet CA, server certificates for brokers and client certificates whose
//! common name is the identity the broker's ACL knows (`<site>/<sensor>`, `collector-<name>`).
//!
//! Revocation: the CA keeps a copy of every client certificate it issues, under
//! `issued/<identity>/` (`/` written `~`), and an `openssl ca` database (`ca.cnf`,
//! `index.txt`, `crlnumber`). [`revoke`] marks every certificate of an identity revoked;
//! [`write_crl`] writes the list the broker checks (`crlfile`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    private(&dir.join("ca.key"))?;
    ca_database(dir)
}

/// How long a certificate revocation list is valid. The broker refuses every client once
/// its list has expired, and only the offline CA can sign a new one, so it is long; a
/// revocation still takes effect when the new list reaches the broker.
const CRL_DAYS: u32 = 3650;

/// The `openssl ca` configuration and database of the CA in `dir`, made if missing (a CA
/// created before revocation existed gets them on first use).
fn ca_database(dir: &Path) -> anyhow::Result<()> {
    let cnf = dir.join("ca.cnf");
    if !cnf.exists() {
        fs::write(
            &cnf,
            format!(
                "[ca]\ndefault_ca = fleet\n[fleet]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
                 certificate = ca.crt\nprivate_key = ca.key\ndefault_md = sha256\n\
                 default_crl_days = {CRL_DAYS}\n"
            ),
        )
        .with_context(|| format!("writing {}", cnf.display()))?;
    }
    for (file, initial) in [("index.txt", ""), ("crlnumber", "01\n")] {
        let path = dir.join(file);
        if !path.exists() {
            fs::write(&path, initial).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Where the CA keeps the certificates it issued to `identity`.
fn issued_dir(ca_dir: &Path, identity: &str) -> PathBuf {
    ca_dir.join("issued").join(identity.replace('/', "~"))
}

/// Revokes every certificate the CA in `ca_dir` issued to `identity`; returns how many.
/// Write the new list with [`write_crl`] and give it to the broker.
pub fn revoke(ca_dir: &Path, identity: &str) -> anyhow::Result<usize> {
    let ca_dir = &absolute(ca_dir)?;
    ca_database(ca_dir)?;
    let dir = issued_dir(ca_dir, identity);
    let certs: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect(),
        Err(_) => Vec::new(),
    };
    if certs.is_empty() {
        bail!(
            "{}: no certificate issued to {identity:?} is on record (no {})",
            ca_dir.display(),
            dir.display()
        );
    }
    let index = fs::read_to_string(ca_dir.join("index.txt")).unwrap_or_default();
    for cert in &certs {
        let serial = cert
            .file_stem()
            .and_then(|s| s.to_str())
            .context("a certificate file named by its serial")?;
        let revoked = index
            .lines()
            .any(|l| l.starts_with('R') && l.split('\t').nth(3) == Some(serial));
        if !revoked {
            openssl(ca_dir, &["ca", "-config", "ca.cnf", "-revoke", path(cert)?])?;
        }
    }
    Ok(certs.len())
}

/// Writes the CA's certificate revocation list (PEM) to `out`: what the broker's `crlfile`
/// names. It lists every certificate [`revoke`] revoked (none at first).
pub fn write_crl(ca_dir: &Path, out: &Path) -> anyhow::Result<()> {
    ca_database(ca_dir)?;
    let out = absolute(out)?;
    openssl(
        ca_dir,
        &["ca", "-config", "ca.cnf", "-gencrl", "-out", path(&out)?],
    )
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
    let ca_dir = &absolute(ca_dir)?;
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
    let client = matches!(usage, Use::Client);
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
    if client {
        keep_issued(ca_dir, cn, &out.join(&crt))?;
    }
    if out.join("ca.crt") != ca_crt {
        fs::copy(&ca_crt, out.join("ca.crt"))?;
    }
    Ok(())
}

/// Copies a client certificate the CA issued into its record, named by its serial, so that
/// [`revoke`] can find it by identity.
fn keep_issued(ca_dir: &Path, identity: &str, crt: &Path) -> anyhow::Result<()> {
    let o = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(crt)
        .output()
        .context("running openssl (is it installed?)")?;
    let text = String::from_utf8_lossy(&o.stdout);
    let serial = text
        .trim()
        .strip_prefix("serial=")
        .with_context(|| format!("no serial in {}", crt.display()))?;
    let dir = issued_dir(ca_dir, identity);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    fs::copy(crt, dir.join(format!("{serial}.crt")))
        .with_context(|| format!("keeping a copy of {} in {}", crt.display(), dir.display()))?;
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

/// `p` made absolute: openssl runs in another directory than ours.
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("{}", p.display()))
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

/// Writes `bytes` to a new file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    Ok(())
}
