//! The router: a default route, per-agent overrides, and wrapping every provider.

use std::sync::Arc;

use botarmy_llm::{
    CassetteWriter, LocalModelConfig, LocalProvider, Provider, RecordingProvider, ReplayProvider,
    Router,
};

fn replay(dir: &std::path::Path) -> Arc<dyn Provider> {
    let path = dir.join("empty.jsonl");
    std::fs::write(&path, "").unwrap();
    Arc::new(ReplayProvider::open(&path).unwrap())
}

#[test]
fn agents_without_an_override_get_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Provider> = Arc::new(LocalProvider::new(
        LocalModelConfig::new(dir.path().join("m.gguf")).with_name("smollm2-135m-instruct"),
    ));
    let router = Router::new(Arc::clone(&local)).with_agent("architect", replay(dir.path()), "");

    let (provider, model) = router.for_agent("analyst");
    assert_eq!(
        (provider.id(), model.as_str()),
        ("local", "smollm2-135m-instruct")
    );
    let (provider, model) = router.for_agent("architect");
    assert_eq!((provider.id(), model.as_str()), ("replay", "replay"));
}

#[test]
fn an_override_can_name_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let router = Router::new(replay(dir.path()))
        .with_default_model("base")
        .with_agent("coder", replay(dir.path()), "big-model");
    assert_eq!(router.for_agent("coder").1, "big-model");
    assert_eq!(router.for_agent("tester").1, "base");
    assert_eq!(format!("{:?}", router.route("coder")), "replay/big-model");
}

#[test]
fn wrapping_providers_keeps_models_and_wraps_a_shared_provider_once() {
    let dir = tempfile::tempdir().unwrap();
    let shared = replay(dir.path());
    let router = Router::new(Arc::clone(&shared))
        .with_agent("coder", Arc::clone(&shared), "m1")
        .with_agent("tester", replay(dir.path()), "m2");
    let writer = Arc::new(CassetteWriter::open(dir.path().join("rec.jsonl")).unwrap());
    let mut wrapped = 0;
    let router = router.map_providers(|inner| {
        wrapped += 1;
        Arc::new(RecordingProvider::new(inner, Arc::clone(&writer)))
    });
    assert_eq!(wrapped, 2);
    assert!(Arc::ptr_eq(
        &router.for_agent("coder").0,
        &router.for_agent("analyst").0
    ));
    assert_eq!(router.for_agent("coder").1, "m1");
    assert_eq!(router.for_agent("tester").1, "m2");
    assert_eq!(router.for_agent("tester").0.id(), "replay");
}
