//! A real single-node `etcd` for tests.
//!
//! It can be stopped and started again on the same ports and data dir, so
//! tests can take coordination away for a while and give it back.
//! [`Etcd::start_tls`] serves clients over TLS (`https://`), optionally
//! requiring client certificates.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{await_ready, find_binary, ServerProcess};
use crate::{io_err, ports, KitError, Result};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const PORT_ATTEMPTS: usize = 6;

/// PEM files for an etcd whose client listener speaks TLS.
#[derive(Debug, Clone)]
pub struct EtcdTlsFiles {
    /// CA that signed the server certificate (and client certificates).
    pub ca: PathBuf,
    /// The server's certificate and key (`--cert-file`, `--key-file`); its
    /// SAN must name 127.0.0.1.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate and key. When given, etcd requires client
    /// certificates signed by `ca` (`--client-cert-auth`), and the kit's
    /// own client ([`Etcd::client`], the readiness probe) presents this one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// A running single-member etcd cluster in its own temp dir.
#[derive(Debug)]
pub struct Etcd {
    binary: std::path::PathBuf,
    tls: Option<EtcdTlsFiles>,
    // The process must die before its dir is removed.
    process: Option<ServerProcess>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

impl Etcd {
    pub async fn start() -> Result<Self> {
        Self::start_with(None).await
    }

    /// An etcd serving clients over TLS (`https://127.0.0.1:PORT`).
    pub async fn start_tls(tls: EtcdTlsFiles) -> Result<Self> {
        Self::start_with(Some(tls)).await
    }

    async fn start_with(tls: Option<EtcdTlsFiles>) -> Result<Self> {
        let binary = find_binary("etcd", "etcd-server")?;
        let dir = tempfile::Builder::new()
            .prefix("sluice-etcd-")
            .tempdir()
            .map_err(io_err("creating a temp dir for etcd"))?;
        let mut etcd = Etcd {
            binary,
            tls,
            process: None,
            dir,
            client_port: 0,
            peer_port: 0,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            etcd.client_port = ports::free_port();
            etcd.peer_port = ports::free_port();
            match etcd.launch().await {
                Ok(()) => return Ok(etcd),
                Err(e @ KitError::Exited { .. })
                    if e.to_string().contains("address already in use") =>
                {
                    // etcd writes its member dir before binding: start clean.
                    let _ = std::fs::remove_dir_all(etcd.dir.path().join("data"));
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| KitError::Command {
            what: "etcd".into(),
            message: "no free port".into(),
        }))
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// A client (over TLS, with the kit's client certificate, for
    /// [`Etcd::start_tls`]). No etcd user: enabling authentication is up
    /// to the test.
    pub async fn client(&self) -> Result<etcd_client::Client> {
        connect(&self.endpoint(), self.tls.as_ref(), None).await
    }

    /// A client authenticated as `user`.
    pub async fn client_as(&self, user: &str, password: &str) -> Result<etcd_client::Client> {
        connect(&self.endpoint(), self.tls.as_ref(), Some((user, password))).await
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ServerProcess::is_running)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// SIGTERM and wait.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(15))).await;
        }
    }

    /// Start again on the same ports with the same data.
    pub async fn restart(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.launch().await
    }

    pub fn pause(&self) {
        if let Some(p) = &self.process {
            p.pause();
        }
    }

    pub fn resume(&self) {
        if let Some(p) = &self.process {
            p.resume();
        }
    }

    fn command(&self) -> Result<Command> {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_err("opening etcd.log"))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--name=sluice-test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=sluice-test={peer}"))
            .arg("--logger=zap")
            .args(self.tls_args())
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("cloning log handle"))?)
            .stderr(log);
        Ok(cmd)
    }

    fn tls_args(&self) -> Vec<String> {
        let Some(tls) = &self.tls else {
            return Vec::new();
        };
        let mut args = vec![
            format!("--cert-file={}", tls.cert.display()),
            format!("--key-file={}", tls.key.display()),
            format!("--trusted-ca-file={}", tls.ca.display()),
        ];
        if tls.client.is_some() {
            args.push("--client-cert-auth".into());
        }
        args
    }

    async fn launch(&mut self) -> Result<()> {
        let name = format!("etcd on 127.0.0.1:{}", self.client_port);
        self.process = Some(ServerProcess::spawn(
            name,
            self.command()?,
            self.log_path(),
        )?);
        let endpoint = self.endpoint();
        let tls = self.tls.clone();
        await_ready(&mut self.process, STARTUP_TIMEOUT, || async {
            let Ok(Ok(mut client)) = tokio::time::timeout(
                Duration::from_secs(2),
                connect(&endpoint, tls.as_ref(), None),
            )
            .await
            else {
                return false;
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(2), client.status()).await,
                Ok(Ok(_))
            )
        })
        .await
    }
}

async fn connect(
    endpoint: &str,
    tls: Option<&EtcdTlsFiles>,
    user: Option<(&str, &str)>,
) -> Result<etcd_client::Client> {
    let mut opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        let read = |path: &PathBuf| std::fs::read(path).map_err(io_err("reading a TLS file"));
        let mut options = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.client {
            options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        }
        opts = opts.with_tls(options);
    }
    if let Some((user, password)) = user {
        opts = opts.with_user(user, password);
    }
    Ok(etcd_client::Client::connect([endpoint], Some(opts)).await?)
}
