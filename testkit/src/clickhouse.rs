//! ClickHouse 18.16 (Debian's) as a real server process.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::process::{terminate, Workdir};
use crate::{free_port, wait_for};

/// A ClickHouse server process (Debian's 18.16) on free loopback ports, data in a temp dir.
/// Queried with `clickhouse-client`, a client we did not write.
pub struct ClickHouse {
    pub http_port: u16,
    pub tcp_port: u16,
    /// With TLS: the HTTPS port, and the directory of `server.crt` and `server.key`.
    https: Option<(u16, std::path::PathBuf)>,
    /// More of `config.xml` (a cluster node's servers, ZooKeeper and macros).
    extra: String,
    /// More settings of the default profile (`users.xml`).
    profile: String,
    dir: Workdir,
    child: Option<Child>,
}

impl ClickHouse {
    pub fn start() -> ClickHouse {
        ClickHouse::launched(Workdir::temp(), None)
    }

    /// As [`ClickHouse::start`], also serving HTTPS with `server.crt` and `server.key` of
    /// `pki` (as [`crate::make_test_pki`] writes them): [`ClickHouse::https_url`].
    pub fn start_tls(pki: &Path) -> ClickHouse {
        ClickHouse::launched(Workdir::temp(), Some((free_port(), pki.to_owned())))
    }

    /// As [`ClickHouse::start`], with its configuration, data and logs in `dir`, kept.
    pub fn start_in(dir: &Path) -> ClickHouse {
        ClickHouse::launched(Workdir::kept(dir), None)
    }

    fn launched(dir: Workdir, https: Option<(u16, std::path::PathBuf)>) -> ClickHouse {
        let ports = (free_port(), free_port());
        ClickHouse::configured(dir, ports, https, (String::new(), String::new()))
    }

    /// A server on the given (HTTP, native) ports with `extra` in its `config.xml` and
    /// `profile` in its default profile.
    pub(crate) fn configured(
        dir: Workdir,
        (http_port, tcp_port): (u16, u16),
        https: Option<(u16, std::path::PathBuf)>,
        (extra, profile): (String, String),
    ) -> ClickHouse {
        let mut c = ClickHouse {
            http_port,
            tcp_port,
            https,
            extra,
            profile,
            dir,
            child: None,
        };
        c.launch();
        c
    }

    /// The server's process id (for its CPU time in the benches).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The HTTP interface, for the collector's configuration.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTPS interface of a server started with [`ClickHouse::start_tls`].
    pub fn https_url(&self) -> String {
        let (port, _) = self.https.as_ref().expect("started with TLS");
        format!("https://127.0.0.1:{port}")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (or restarts) the server on the same ports and data directory.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "ClickHouse already running");
        let d = self.dir.path();
        let conf = d.join("config.xml");
        let tls = match &self.https {
            Some((port, pki)) => format!(
                "<https_port>{port}</https_port>\n<openSSL><server>\
                 <certificateFile>{pki}/server.crt</certificateFile>\
                 <privateKeyFile>{pki}/server.key</privateKeyFile>\
                 <verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile>\
                 <cacheSessions>true</cacheSessions><disableProtocols>sslv2,sslv3</disableProtocols>\
                 <preferServerCiphers>true</preferServerCiphers></server></openSSL>\n",
                pki = pki.display()
            ),
            None => String::new(),
        };
        fs::write(
            &conf,
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\n\
                 <logger><level>warning</level><log>{d}/server.log</log>\
                 <errorlog>{d}/error.log</errorlog><console>0</console></logger>\n\
                 <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>\
                 <listen_host>127.0.0.1</listen_host>\n{tls}\
                 <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path>\
                 <user_files_path>{d}/user_files/</user_files_path>\
                 <format_schema_path>{d}/format_schemas/</format_schema_path>\n\
                 <users_config>{d}/users.xml</users_config>\
                 <default_profile>default</default_profile>\
                 <default_database>default</default_database>\n\
                 <mark_cache_size>268435456</mark_cache_size>\
                 <max_concurrent_queries>100</max_concurrent_queries>\n{extra}</yandex>\n",
                d = d.display(),
                http = self.http_port,
                tcp = self.tcp_port,
                extra = self.extra,
            ),
        )
        .expect("write config.xml");
        fs::write(
            d.join("users.xml"),
            format!(
                "<?xml version=\"1.0\"?>\n<yandex>\n\
                 <profiles><default><max_memory_usage>4000000000</max_memory_usage>{}\
                 </default></profiles>\n\
                 <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip>\
                 </networks><profile>default</profile><quota>default</quota></default></users>\n\
                 <quotas><default></default></quotas>\n</yandex>\n",
                self.profile
            ),
        )
        .expect("write users.xml");
        let child = Command::new("/usr/sbin/clickhouse-server")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server is installed (deploy/setup.sh)");
        self.child = Some(child);
        let ok = wait_for(Duration::from_secs(30), || {
            self.try_query("SELECT 1").ok().filter(|o| o.trim() == "1")
        });
        if ok.is_none() {
            panic!(
                "ClickHouse did not answer on {}:\n{}",
                self.tcp_port,
                fs::read_to_string(d.join("error.log")).unwrap_or_default()
            );
        }
    }

    /// Runs `sql` with clickhouse-client; Err carries its stderr.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let out = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp_port.to_string()])
            .args(["--query", sql])
            .output()
            .expect("clickhouse-client is installed (deploy/setup.sh)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `sql`, which must succeed, and returns its output (TabSeparated).
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("ClickHouse refused {sql}: {e}"))
    }

    /// Kills the server at once (SIGKILL): what it had not written is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 20 s).
    pub fn stop(&mut self) {
        terminate(self.child.take(), Duration::from_secs(20));
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}
