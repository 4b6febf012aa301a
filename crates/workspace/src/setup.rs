use std::path::Path;

/// A command that makes a checkout ready, proposed to a human before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupCommand {
    /// The file that suggested it (`Cargo.toml`).
    pub found: &'static str,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// What it does, for the person confirming it.
    pub why: &'static str,
}

impl SetupCommand {
    fn new(found: &'static str, argv: &[&str], why: &'static str) -> Self {
        Self {
            found,
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            why,
        }
    }

    /// The command as a shell line, for display.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// The setup commands a checkout's files suggest, in a stable order (one per ecosystem
/// found): Cargo, npm, Python, Go, Make.
pub fn detect_setup(dir: &Path) -> Vec<SetupCommand> {
    let has = |name: &str| dir.join(name).is_file();
    let mut found = Vec::new();
    if has("Cargo.toml") {
        found.push(SetupCommand::new(
            "Cargo.toml",
            &["cargo", "fetch"],
            "download the Rust dependencies",
        ));
    }
    if has("package.json") {
        let cmd = if has("package-lock.json") || has("npm-shrinkwrap.json") {
            SetupCommand::new(
                "package-lock.json",
                &["npm", "ci"],
                "install the exact locked npm dependencies",
            )
        } else {
            SetupCommand::new(
                "package.json",
                &["npm", "install"],
                "install the npm dependencies",
            )
        };
        found.push(cmd);
    }
    if has("requirements.txt") {
        found.push(SetupCommand::new(
            "requirements.txt",
            &["python3", "-m", "pip", "install", "-r", "requirements.txt"],
            "install the Python requirements",
        ));
    } else if has("pyproject.toml") {
        found.push(SetupCommand::new(
            "pyproject.toml",
            &["python3", "-m", "pip", "install", "-e", "."],
            "install the Python project in editable mode",
        ));
    }
    if has("go.mod") {
        found.push(SetupCommand::new(
            "go.mod",
            &["go", "mod", "download"],
            "download the Go modules",
        ));
    }
    if has("Makefile") && found.is_empty() {
        // A Makefile alone: its default target is the project's own idea of "build".
        found.push(SetupCommand::new(
            "Makefile",
            &["make"],
            "run the Makefile's default target",
        ));
    }
    found
}
