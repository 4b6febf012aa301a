//! Errors of the definitions loader: each names the file, the line and column, the field,
//! what was found and what was expected.

use std::fmt;

use super::yaml::Pos;

/// Where in a method folder something is: a file relative to the folder, and a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File path relative to the method folder, with `/` separators.
    pub file: String,
    /// Line, from 1 (0 when unknown).
    pub line: u32,
    /// Column, from 1 (0 when unknown).
    pub column: u32,
}

impl Location {
    /// A location at a position of `file`.
    pub fn new(file: &str, pos: Pos) -> Self {
        Self {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
        }
    }

    /// The whole file, no position.
    pub fn file(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

/// One problem found while loading a definitions file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{at}: cannot read the file: {message}")]
    Read {
        /// The file.
        at: Location,
        /// What the operating system said.
        message: String,
    },
    /// The text is not valid YAML (or not UTF-8).
    #[error("{at}: invalid YAML: {message}")]
    Syntax {
        /// Where the parser stopped.
        at: Location,
        /// The parser's message.
        message: String,
    },
    /// A field holds the wrong kind of value.
    #[error("{at}: {field}: expected {expected}, found {found}")]
    WrongType {
        /// Where the value starts.
        at: Location,
        /// Path of the field from the document root (`workflow.sequence[3].requires`).
        field: String,
        /// What the loader accepts there.
        expected: String,
        /// What it found.
        found: String,
    },
    /// A required field is absent.
    #[error("{at}: {field}: missing (expected {expected})")]
    Missing {
        /// Where the enclosing map starts.
        at: Location,
        /// Path of the missing field.
        field: String,
        /// What it should hold.
        expected: String,
    },
    /// An agent file has no fenced YAML block.
    #[error(
        "{at}: no ```yaml block found (an agent file is markdown followed by one fenced yaml block)"
    )]
    NoYamlBlock {
        /// The file.
        at: Location,
    },
    /// Something else is wrong with a value.
    #[error("{at}: {field}: {message}")]
    Invalid {
        /// Where the value starts.
        at: Location,
        /// Path of the field.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl LoadError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            Self::Read { at, .. }
            | Self::Syntax { at, .. }
            | Self::WrongType { at, .. }
            | Self::Missing { at, .. }
            | Self::NoYamlBlock { at }
            | Self::Invalid { at, .. } => at,
        }
    }
}

impl LoadError {
    /// The field the problem is in (`(file)` when it is the whole file) and what is
    /// wrong, without the location.
    pub fn field_and_message(&self) -> (String, String) {
        match self {
            Self::Read { message, .. } => ("(file)".to_owned(), format!("cannot read the file: {message}")),
            Self::Syntax { message, .. } => ("(file)".to_owned(), format!("invalid YAML: {message}")),
            Self::WrongType { field, expected, found, .. } => {
                (field.clone(), format!("expected {expected}, found {found}"))
            }
            Self::Missing { field, expected, .. } => {
                (field.clone(), format!("missing (expected {expected})"))
            }
            Self::NoYamlBlock { .. } => (
                "(file)".to_owned(),
                "no ```yaml block found (an agent file is markdown followed by one fenced yaml block)".to_owned(),
            ),
            Self::Invalid { field, message, .. } => (field.clone(), message.clone()),
        }
    }
}

/// Every problem found while loading a method folder.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct LoadErrors {
    /// The method that failed to load (`builtin` or a folder path).
    pub method: String,
    /// The problems, in file order.
    pub errors: Vec<LoadError>,
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} error{} in method {}",
            if n == 1 { "" } else { "s" },
            self.method
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}
