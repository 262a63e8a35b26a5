//! What every dashboard test needs: the schema in a real ClickHouse, the binary serving
//! it with two users, and an HTTP client that keeps redirects and errors for the test.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use testkit::{free_port, wait_for, ClickHouse};

/// A ClickHouse with the collector's schema.
pub fn clickhouse() -> ClickHouse {
    let ch = ClickHouse::start();
    let cfg = collector::config::Config::parse(&format!(
        "version = 1\n[clickhouse]\nurl = \"{}\"\n",
        ch.url()
    ))
    .expect("config");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(collector::migrate::migrate(cfg.clickhouse()))
        .expect("migrate");
    ch
}

/// The dashboard process, stopped when dropped.
pub struct Dashboard {
    child: Child,
    pub base: String,
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_footfall-dashboard")
}

pub fn add_user(users: &Path, name: &str, password: &str, brands: &str) {
    let mut args = vec!["add-user", "--users", users.to_str().expect("utf-8"), name];
    if !brands.is_empty() {
        args.extend(["--brands", brands]);
    }
    let mut child = Command::new(bin())
        .args(&args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("add-user");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("password");
    assert!(child.wait().expect("wait").success());
}

pub fn start(dir: &Path, ch: &ClickHouse) -> Dashboard {
    let key = dir.join("session.key");
    std::fs::write(&key, (0..64u8).collect::<Vec<u8>>()).expect("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("mode");
    let users = dir.join("users");
    add_user(&users, "ana", "ana's long password", "");
    add_user(&users, "bo", "bo's long password!", "bolt-cola");
    let port = free_port();
    let cfg = dir.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[clickhouse]\nurl = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
             [auth]\nusers_file = \"{}\"\nsession_key_file = \"{}\"\n[privacy]\nmin_devices = 20\n",
            ch.url(),
            users.display(),
            key.display()
        ),
    )
    .expect("config");
    let child = Command::new(bin())
        .args(["serve", "--config", cfg.to_str().expect("utf-8")])
        .spawn()
        .expect("serve");
    let base = format!("http://127.0.0.1:{port}");
    let d = Dashboard { child, base };
    wait_for(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("the dashboard listens");
    d
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

/// Status, headers we look at, body.
pub fn get(url: &str, cookie: Option<&str>) -> (u16, ureq::Response) {
    let mut r = agent().get(url);
    if let Some(c) = cookie {
        r = r.set("Cookie", c);
    }
    match r.call() {
        Ok(res) => (res.status(), res),
        Err(ureq::Error::Status(code, res)) => (code, res),
        Err(e) => panic!("{url}: {e}"),
    }
}

pub fn post(
    url: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> (u16, ureq::Response) {
    let mut r = agent().post(url);
    if let Some(c) = cookie {
        r = r.set("Cookie", c);
    }
    if let Some(o) = origin {
        r = r.set("Origin", o);
    }
    match r.send_form(form) {
        Ok(res) => (res.status(), res),
        Err(ureq::Error::Status(code, res)) => (code, res),
        Err(e) => panic!("{url}: {e}"),
    }
}

pub fn sign_in(base: &str, user: &str, password: &str) -> String {
    let (status, res) = post(
        &format!("{base}/login"),
        None,
        None,
        &[("user", user), ("password", password), ("next", "/stores")],
    );
    assert_eq!(status, 303, "{user}");
    let set = res
        .header("Set-Cookie")
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    set.split(';').next().expect("name=value").to_owned()
}
