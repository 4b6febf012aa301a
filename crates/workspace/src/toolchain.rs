//! The host's language toolchains as the sandbox shows them: the few folders a compiler or
//! interpreter needs, read-only, and the variables that point it there. The home folder is
//! hidden inside the sandbox, and rustup, pyenv, nvm and Go often live in it; bringing back
//! only their own folders keeps what else is there (`~/.cargo/credentials.toml`, `~/.ssh`,
//! `~/.config`, `~/.npmrc`) out of reach.
//!
//! Where a tool must write (cargo's package-cache lock, Go's build cache, npm's cache), it
//! gets a folder in the sandbox's private `/tmp`, which is empty at every command.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A host folder shown read-only inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// The folder on the host.
    pub source: PathBuf,
    /// Where commands see it.
    pub target: PathBuf,
}

impl Bind {
    /// `source` shown at the same path.
    pub fn same(source: impl Into<PathBuf>) -> Self {
        let source = source.into();
        Self {
            target: source.clone(),
            source,
        }
    }
}

/// One toolchain: the folders its commands need and the variables that locate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// What it is, for people (`rust`, `python`, `node`, `go`).
    pub name: String,
    /// Folders shown read-only inside the sandbox (those missing on the host are skipped).
    pub read_only: Vec<Bind>,
    /// Variables set for commands inside the sandbox.
    pub env: Vec<(String, OsString)>,
    /// Variables set for commands run without the sandbox: the real locations (the home
    /// folder is the worktree there too, so the defaults would point into it).
    pub direct_env: Vec<(String, OsString)>,
}

impl Toolchain {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            read_only: Vec::new(),
            env: Vec::new(),
            direct_env: Vec::new(),
        }
    }

    /// Shows `source` at `target` if it exists.
    fn bind(&mut self, source: &Path, target: &Path) {
        if source.is_dir() {
            self.read_only.push(Bind {
                source: source.to_path_buf(),
                target: target.to_path_buf(),
            });
        }
    }

    fn set(&mut self, name: &str, value: impl Into<OsString>) {
        self.env.push((name.to_owned(), value.into()));
    }

    fn set_direct(&mut self, name: &str, value: impl Into<OsString>) {
        self.direct_env.push((name.to_owned(), value.into()));
    }
}

/// The toolchains commands may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toolchains {
    list: Vec<Toolchain>,
}

/// Inside the sandbox: cargo's home, writable, with the real `bin`, `registry` and `git`
/// bound into it read-only (cargo takes a lock file in its home even offline).
const SANDBOX_CARGO_HOME: &str = "/tmp/cargo-home";

impl Toolchains {
    /// None: commands see only what lies outside the hidden folders.
    pub fn none() -> Self {
        Self::default()
    }

    /// The toolchains of this process's user ([`HostEnv::from_process`]); call it once,
    /// where components are wired.
    pub fn from_env() -> Self {
        Self::detect(&HostEnv::from_process())
    }

    /// The toolchains `host` has: rustup/cargo, pyenv and a virtualenv, nvm or Volta and
    /// npm, Go. Only what exists on the host is bound.
    pub fn detect(host: &HostEnv) -> Self {
        let list = [rust(host), python(host), node(host), go(host)]
            .into_iter()
            .flatten()
            .collect();
        Self { list }
    }

    /// Adds one (e.g. a folder the user configured).
    pub fn push(&mut self, toolchain: Toolchain) {
        self.list.push(toolchain);
    }

    /// The toolchains, in detection order.
    pub fn iter(&self) -> impl Iterator<Item = &Toolchain> {
        self.list.iter()
    }

    /// Every read-only folder.
    pub fn binds(&self) -> impl Iterator<Item = &Bind> {
        self.list.iter().flat_map(|t| t.read_only.iter())
    }

    /// The variables set inside the sandbox.
    pub fn env(&self) -> impl Iterator<Item = (&str, &OsString)> {
        self.list
            .iter()
            .flat_map(|t| t.env.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The variables set when commands run without the sandbox.
    pub fn direct_env(&self) -> impl Iterator<Item = (&str, &OsString)> {
        self.list
            .iter()
            .flat_map(|t| t.direct_env.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

/// What toolchain detection looks at: the home folder and the variables that move
/// toolchains elsewhere. Tests build one by hand; the binary takes the process's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEnv {
    /// The user's home folder.
    pub home: PathBuf,
    /// Variables by name (only those in [`HostEnv::VARS`] are looked at).
    pub vars: BTreeMap<String, OsString>,
}

impl HostEnv {
    /// The variables detection reads.
    pub const VARS: &'static [&'static str] = &[
        "PATH",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "PYENV_ROOT",
        "VIRTUAL_ENV",
        "NVM_DIR",
        "VOLTA_HOME",
        "GOROOT",
        "GOPATH",
        "GOMODCACHE",
    ];

    /// A host whose home is `home`, with no variables set.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            vars: BTreeMap::new(),
        }
    }

    /// Sets a variable.
    pub fn with_var(mut self, name: &str, value: impl Into<OsString>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// This process's home folder and variables.
    pub fn from_process() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let mut host = Self::new(home);
        for name in Self::VARS {
            if let Some(value) = std::env::var_os(name) {
                host.vars.insert((*name).to_owned(), value);
            }
        }
        host
    }

    /// A variable naming a folder (empty counts as unset).
    fn dir(&self, name: &str) -> Option<PathBuf> {
        self.vars
            .get(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// Where `program` is found on PATH.
    fn which(&self, program: &str) -> Option<PathBuf> {
        let path = self.vars.get("PATH")?;
        std::env::split_paths(path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    }
}

fn rust(host: &HostEnv) -> Option<Toolchain> {
    let cargo_home = host
        .dir("CARGO_HOME")
        .unwrap_or_else(|| host.home.join(".cargo"));
    let rustup_home = host
        .dir("RUSTUP_HOME")
        .unwrap_or_else(|| host.home.join(".rustup"));
    if !cargo_home.is_dir() && !rustup_home.is_dir() && host.which("cargo").is_none() {
        return None;
    }
    let mut t = Toolchain::new("rust");
    let inside = Path::new(SANDBOX_CARGO_HOME);
    // Only these three of cargo's home: never credentials.toml or config.toml (tokens).
    t.bind(&cargo_home.join("bin"), &cargo_home.join("bin"));
    for part in ["bin", "registry", "git"] {
        t.bind(&cargo_home.join(part), &inside.join(part));
    }
    t.set("CARGO_HOME", SANDBOX_CARGO_HOME);
    // There is no network inside: say so, so that cargo fails at once with its message.
    t.set("CARGO_NET_OFFLINE", "true");
    t.set_direct("CARGO_HOME", &cargo_home);
    if rustup_home.is_dir() {
        t.bind(&rustup_home, &rustup_home);
        t.set("RUSTUP_HOME", &rustup_home);
        t.set("RUSTUP_AUTO_INSTALL", "0");
        t.set_direct("RUSTUP_HOME", &rustup_home);
    }
    Some(t)
}

fn python(host: &HostEnv) -> Option<Toolchain> {
    let mut t = Toolchain::new("python");
    let pyenv = host
        .dir("PYENV_ROOT")
        .unwrap_or_else(|| host.home.join(".pyenv"));
    if pyenv.is_dir() {
        t.bind(&pyenv, &pyenv);
        t.set("PYENV_ROOT", &pyenv);
        t.set_direct("PYENV_ROOT", &pyenv);
    }
    if let Some(venv) = host.dir("VIRTUAL_ENV").filter(|d| d.is_dir()) {
        t.bind(&venv, &venv);
        // The interpreter the virtualenv was made from (`home = …/bin` in pyvenv.cfg), when
        // it lies in the home folder too.
        if let Some(base) = venv_base(&venv).filter(|b| b.starts_with(&host.home)) {
            t.bind(&base, &base);
        }
        t.set("VIRTUAL_ENV", &venv);
        t.set_direct("VIRTUAL_ENV", &venv);
    }
    (!t.env.is_empty()).then_some(t)
}

/// The installation a virtualenv's interpreter comes from: the parent of `home` in its
/// `pyvenv.cfg`.
fn venv_base(venv: &Path) -> Option<PathBuf> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    let home = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })?;
    home.parent().map(Path::to_path_buf)
}

fn node(host: &HostEnv) -> Option<Toolchain> {
    let mut t = Toolchain::new("node");
    for (var, default) in [("NVM_DIR", ".nvm"), ("VOLTA_HOME", ".volta")] {
        let dir = host.dir(var).unwrap_or_else(|| host.home.join(default));
        if dir.is_dir() {
            t.bind(&dir, &dir);
            t.set(var, &dir);
            t.set_direct(var, &dir);
        }
    }
    if t.env.is_empty() && host.which("node").is_none() {
        return None;
    }
    // npm keeps its cache and logs in the home folder, which is the worktree here.
    t.set("npm_config_cache", "/tmp/npm-cache");
    t.set("npm_config_update_notifier", "false");
    Some(t)
}

fn go(host: &HostEnv) -> Option<Toolchain> {
    let goroot = host.dir("GOROOT").or_else(|| {
        let go = std::fs::canonicalize(host.which("go")?).ok()?;
        Some(go.parent()?.parent()?.to_path_buf())
    })?;
    let mut t = Toolchain::new("go");
    t.bind(&goroot, &goroot);
    if host.dir("GOROOT").is_some() {
        t.set("GOROOT", &goroot);
        t.set_direct("GOROOT", &goroot);
    }
    let gopath = host
        .vars
        .get("GOPATH")
        .and_then(|p| std::env::split_paths(p).next())
        .unwrap_or_else(|| host.home.join("go"));
    let modcache = host
        .dir("GOMODCACHE")
        .unwrap_or_else(|| gopath.join("pkg").join("mod"));
    t.bind(&gopath.join("bin"), &gopath.join("bin"));
    t.bind(&modcache, &modcache);
    t.set("GOPATH", "/tmp/go");
    t.set("GOMODCACHE", &modcache);
    t.set("GOCACHE", "/tmp/go-build");
    // No network inside: modules come from the cache or not at all, and the toolchain
    // that is installed is the one used.
    t.set("GOPROXY", "off");
    t.set("GOTOOLCHAIN", "local");
    t.set_direct("GOPATH", &gopath);
    t.set_direct("GOCACHE", host.home.join(".cache").join("go-build"));
    Some(t)
}
