//! A headless Chromium (Debian package `chromium`) for tests of web pages,
//! a raw HTTP/1.1 client that shows every header, and small readers of the
//! HTML a page renders.
//!
//! Every Chromium run gets a fresh profile directory and the flags that
//! keep it from talking to anything but the page (no background
//! networking, component updates, sync or QUIC), and is killed when it
//! does not finish within its deadline. A missing binary fails the test
//! naming the package.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one Chromium run may take.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// The `chromium` binary on `PATH`; fails the test if there is none.
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium not found on PATH: install the Debian package `chromium` \
                 (deploy/local/prereqs.sh installs it)"
            )
        })
}

/// What a Chromium run printed.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `chromium --headless … ARGS URL` with a fresh profile; fails the
/// test if it does not exit 0 within [`CHROMIUM_TIMEOUT`].
pub async fn chromium_run(args: &[String], url: &str) -> Run {
    let bin = chromium();
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut cmd = Command::new(&bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-default-browser-check",
        "--metrics-recording-only",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let url = url.to_string();
    let args = args.to_vec();
    let run = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (Debian package `chromium`)",
                bin.display()
            )
        });
        // Drain the pipes on threads so a chatty browser cannot block.
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err, &mut s);
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for chromium") {
                break Some(status);
            }
            if started.elapsed() > CHROMIUM_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out_thread.join().unwrap_or_default();
        let stderr = err_thread.join().unwrap_or_default();
        (status, stdout, stderr)
    })
    .await
    .expect("the chromium runner");
    let (status, stdout, stderr) = run;
    match status {
        Some(s) if s.success() => Run { stdout, stderr },
        Some(s) => panic!("chromium {args:?} {url} failed ({s}):\n{stderr}"),
        None => {
            panic!("chromium {args:?} {url} did not finish within {CHROMIUM_TIMEOUT:?}:\n{stderr}")
        }
    }
    // The profile directory is removed here, after the browser exited.
}

/// The DOM of `url` after the page loaded (and its scripts ran for
/// `virtual_ms` of virtual time, if given).
pub async fn dump_dom(url: &str, virtual_ms: Option<u64>) -> String {
    let mut args = vec!["--dump-dom".to_string()];
    if let Some(ms) = virtual_ms {
        args.push(format!("--virtual-time-budget={ms}"));
    }
    chromium_run(&args, url).await.stdout
}

/// A PNG of `url` at `width`×`height` in `file`.
pub async fn screenshot(url: &str, file: &Path, width: u32, height: u32) {
    let args = vec![
        format!("--screenshot={}", file.display()),
        format!("--window-size={width},{height}"),
        "--hide-scrollbars".to_string(),
    ];
    chromium_run(&args, url).await;
    let png =
        std::fs::read(file).unwrap_or_else(|e| panic!("no screenshot {}: {e}", file.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        file.display()
    );
}

/// An HTTP answer with all its headers.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD path` to `addr` with `headers` and `body` (HTTP/1.1, one request
/// per connection).
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let attempt = async {
        let started = Instant::now();
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>((
            String::from_utf8_lossy(&raw).into_owned(),
            started.elapsed(),
        ))
    };
    let (text, elapsed) = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} timed out"))
        .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        code,
        headers,
        body: body.to_string(),
        elapsed,
    }
}

/// The start tag of the element with `id` (`<span id="x" …>`).
pub fn tag_of<'h>(html: &'h str, id: &str) -> Option<&'h str> {
    let at = html.find(&format!(" id=\"{id}\""))?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    Some(&html[start..=end])
}

/// The value of `attr` in the start tag `tag`.
pub fn attr<'t>(tag: &'t str, attr: &str) -> Option<&'t str> {
    let needle = format!(" {attr}=\"");
    let at = tag.find(&needle)? + needle.len();
    let end = at + tag[at..].find('"')?;
    Some(&tag[at..end])
}

/// The text directly inside the element with `id`, up to its first child
/// tag, with the common entities decoded.
pub fn text_of(html: &str, id: &str) -> Option<String> {
    let tag = tag_of(html, id)?;
    let at = html.find(tag)? + tag.len();
    let end = at + html[at..].find('<')?;
    Some(
        html[at..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// The element with `id` up to its closing `</name>` (no nesting of the
/// same element inside, as for `<svg>` and `<section>` here).
pub fn element<'h>(html: &'h str, id: &str) -> Option<&'h str> {
    let tag = tag_of(html, id)?;
    let name: String = tag[1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let start = html.find(tag)?;
    let end = start + html[start..].find(&format!("</{name}>"))? + name.len() + 3;
    Some(&html[start..end])
}
