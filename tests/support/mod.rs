//! Shared harness of the end-to-end tests: the real `govtrust` binary, real TLS, the real
//! `openssl` CLI.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_govtrust")
}

/// The HTTP port's URL a server announced in `log`.
fn http_url(log: &str) -> String {
    let marker = "HTTP for relying parties on ";
    let start = log
        .find(marker)
        .expect("the server announces its HTTP port")
        + marker.len();
    log[start..].split_whitespace().next().unwrap().to_owned()
}

/// Runs the binary with `args` and no server settings (init, serve in the foreground).
pub fn govtrust(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().unwrap()
}

/// A running `govtrust serve`, killed (SIGKILL) when dropped.
pub struct Server {
    pub data: PathBuf,
    pub url: String,
    /// The HTTP port for relying parties, `http://127.0.0.1:PORT` (the server picks the port).
    pub http: String,
    /// Where the administrators' credential directories are: `data/admin` in dev mode.
    admins: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `serve --dev` on a fresh data directory inside `dir`.
    pub fn dev(dir: &Path) -> Server {
        Self::start(&dir.join("data"), true)
    }

    /// Starts `serve` (sealed) on an existing deployment.
    pub fn start(data: &Path, dev: bool) -> Server {
        Self::start_with(data, dev, &[])
    }

    /// Starts `serve` with extra arguments.
    pub fn start_with(data: &Path, dev: bool, extra: &[&str]) -> Server {
        // A free port can be taken by another test's server between our probe and its bind:
        // then our server exits ("cannot listen") and we try another port.
        for _ in 0..5 {
            let mut server = Self::spawn(data, dev, extra, free_port());
            if server.wait_until_listening() {
                return server;
            }
        }
        panic!("server did not start after 5 attempts");
    }

    fn spawn(data: &Path, dev: bool, extra: &[&str], port: u16) -> Server {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--http-listen", "127.0.0.1:0", "--data"])
            .arg(data);
        if dev {
            command.arg("--dev");
        }
        command.args(extra);
        let log = std::fs::File::create(data.with_extension(format!("{port}.log"))).unwrap();
        let child = command
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Server {
            data: data.to_path_buf(),
            url: format!("https://localhost:{port}"),
            http: String::new(),
            admins: data.join("admin"),
            child,
        }
    }

    /// Waits for this server's own "listening" line (a connect alone could reach another
    /// process on a reused port); false if the server exited first.
    fn wait_until_listening(&mut self) -> bool {
        let port = self.url.rsplit(':').next().unwrap_or_default().to_owned();
        let line = format!("govtrust listening on 127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains(&line) {
                self.http = http_url(&log);
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "server did not listen on {port} within 60 s; log: {}",
            self.log()
        );
    }

    /// `path` on the HTTP port.
    pub fn http_url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        let port = self.url.rsplit(':').next().unwrap_or_default();
        std::fs::read_to_string(self.data.with_extension(format!("{port}.log"))).unwrap_or_default()
    }

    /// Stops the server with SIGTERM, as an operator would, and waits until it has exited
    /// (it writes what it still counts in memory first).
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "server did not stop within 30 s of SIGTERM; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id (for /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn root(&self) -> PathBuf {
        self.data.join("ca/root.pem")
    }

    /// The credential directory of an administrator role.
    pub fn admin(&self, role: &str) -> PathBuf {
        self.admins.join(role)
    }

    /// Looks for the administrators' credentials in `dir` (a production `--admin-out`).
    pub fn with_admins(mut self, dir: &Path) -> Server {
        self.admins = dir.to_path_buf();
        self
    }

    /// Runs a client subcommand against this server.
    pub fn gt(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .env("GOVTRUST_SERVER", &self.url)
            .env("GOVTRUST_CA", self.root())
            .output()
            .unwrap()
    }

    /// Runs a client subcommand as `role` (an admin role name) or a credential directory.
    pub fn gt_as(&self, identity: &Path, args: &[&str]) -> Output {
        self.command_as(identity, args).output().unwrap()
    }

    /// A client subcommand as `identity` (a credential directory), not yet started.
    pub fn command_as(&self, identity: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("GOVTRUST_SERVER", &self.url)
            .env("GOVTRUST_CA", self.root())
            .env("GOVTRUST_IDENTITY", identity);
        command
    }

    /// Creates a key as `identity` (a credential directory); returns its metadata as JSON.
    pub fn create_key(
        &self,
        identity: &Path,
        algorithm: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let mut args = vec!["kms", "key", "create", "--algorithm", algorithm, "--json"];
        args.extend_from_slice(extra);
        json(&self.ok(self.gt_as(identity, &args)))
    }

    /// As [`ok`], with the end of this server's log in the message when the command failed
    /// (an internal error says only that the log has the details).
    pub fn ok(&self, output: Output) -> String {
        if !output.status.success() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "command failed: {}\nstdout: {}\nserver log, last lines:\n{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout),
                tail.join("\n")
            );
        }
        ok(output)
    }

    /// Registers a system as the system administrator; returns its enrollment token.
    pub fn register(&self, name: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "system",
            "register",
            "--name",
            name,
            "--org",
            "finance",
            "--level",
            "3",
            "--network",
            "extranet",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = self.ok(self.gt_as(&self.admin("system-admin"), &args));
        json(&out)["enrollment_token"].as_str().unwrap().to_owned()
    }
}

impl Server {
    /// Registers system `name` (as [`Server::register`]) and enrolls it into `dir/<name>`;
    /// returns its credential directory.
    pub fn enrolled(&self, dir: &Path, name: &str) -> PathBuf {
        let token = self.register(name, &[]);
        let out = dir.join(name);
        self.ok(self.gt(&["enroll", "--token", &token, "--out", out.to_str().unwrap()]));
        out
    }
}

/// A production deployment made by `govtrust init` in a directory of its own: the data
/// directory, the custodians' shares and the administrators' credentials (`--admin-out`) are
/// three directories side by side.
pub struct Deployment {
    pub data: PathBuf,
    pub shares: PathBuf,
    pub admins: PathBuf,
    /// What `init` printed.
    pub output: String,
}

impl Deployment {
    /// Runs `govtrust init` in `dir` with `extra` arguments, asserting success.
    pub fn init(dir: &Path, extra: &[&str]) -> Deployment {
        let (data, shares, admins) = (dir.join("data"), dir.join("shares"), dir.join("admins"));
        let mut args = vec!["init", "--data", data.to_str().unwrap()];
        args.extend(["--shares-out", shares.to_str().unwrap()]);
        args.extend(["--admin-out", admins.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let output = ok(govtrust(&args));
        Deployment {
            data,
            shares,
            admins,
            output,
        }
    }

    /// Share file `n` (1-based).
    pub fn share(&self, n: u32) -> PathBuf {
        self.shares.join(format!("share-{n}.txt"))
    }

    /// Starts `serve` (sealed) on this deployment with `extra` arguments.
    pub fn serve(&self, extra: &[&str]) -> Server {
        Server::start_with(&self.data, false, extra).with_admins(&self.admins)
    }

    /// Gives `server` shares 1 to 3.
    pub fn unseal(&self, server: &Server) {
        for n in 1..=3 {
            ok(server.gt(&["unseal", "--share", self.share(n).to_str().unwrap()]));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asserts the command succeeded and returns its stdout.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "command failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Asserts the command failed and returns its stderr.
pub fn fails(output: Output) -> String {
    assert!(
        !output.status.success(),
        "command unexpectedly succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Runs the `openssl` CLI in `dir`, asserting success; returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI is installed");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A P-256 key and CSR made by `openssl req`, files `<stem>.key` and `<stem>.csr` in `dir`.
pub fn openssl_csr(dir: &Path, stem: &str, subject: &str, extra: &[&str]) -> PathBuf {
    let key = format!("{stem}.key");
    let csr = format!("{stem}.csr");
    let mut args = vec![
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        subject,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
    dir.join(csr)
}

/// A self-signed P-256 CA made by `openssl req -x509`, files `<stem>.key` and `<stem>.pem` in
/// `dir`, valid for `days`; `extra` goes on the command line (e.g. `-addext`). Returns the
/// certificate's path.
pub fn openssl_ca(dir: &Path, stem: &str, subject: &str, days: u32, extra: &[&str]) -> PathBuf {
    let (key, cert, days) = (
        format!("{stem}.key"),
        format!("{stem}.pem"),
        days.to_string(),
    );
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        subject,
        "-days",
        &days,
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
    dir.join(cert)
}

/// A credential directory (`dir/foreign`: cert.pem, key.pem) holding a client certificate that
/// claims the SPIFFE id `id`, from a CA of our own making that the server does not trust.
pub fn foreign_credential(dir: &Path, id: &str) -> PathBuf {
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    openssl_ca(&foreign, "ca", "/CN=Foreign CA", 30, &[]);
    openssl_csr(&foreign, "leaf", "/CN=intruder", &[]);
    let ext = format!("subjectAltName=URI:{id}\nextendedKeyUsage=clientAuth\n");
    std::fs::write(foreign.join("ext.cnf"), ext).unwrap();
    openssl(
        &foreign,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "30",
            "-extfile",
            "ext.cnf",
        ],
    );
    std::fs::rename(foreign.join("leaf.key"), foreign.join("key.pem")).unwrap();
    foreign
}

/// An HTTP answer: status code, headers (names lower-case) and body.
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The value of header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url` (plain `http://host:port/path`) over HTTP/1.1, with no client library in between.
pub fn http_get(url: &str) -> HttpAnswer {
    http_request("GET", url, None)
}

/// `method url` with an optional body of `(content type, bytes)`.
pub fn http_request(method: &str, url: &str, body: Option<(&str, &[u8])>) -> HttpAnswer {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").into_bytes();
    if let Some((content_type, bytes)) = body {
        let head = format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        );
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(bytes);
    } else {
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> HttpAnswer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpAnswer {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&raw[..line_end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
