//! The one error type of the image builder library ([`Error`]) and its [`Result`] alias.
//!
//! Every variant says what failed and on which file, package or command; errors caused by another
//! error keep it as their `source()`, so the binary (which reports with anyhow) prints the whole
//! chain, e.g. the `--update-lock` hint above apt-get's own output. [`IoContext`] and
//! [`ErrorContext`] add that context at the call sites (`.context_io("reading X")`).

use std::fmt;

/// The result of the image builder's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Why an image could not be built, booted or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation or starting a program failed; `what` names the operation and path.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An external command ran and exited unsuccessfully; `output` is what it printed.
    #[error("`{command}` failed ({status}){}", CommandOutput(.output))]
    Command { command: String, status: String, output: String },
    /// A TOML file (board profile, packages.lock) could not be parsed.
    #[error("{what}")]
    Toml {
        what: String,
        #[source]
        source: toml::de::Error,
    },
    /// A TOML file could not be written.
    #[error("{what}")]
    TomlWrite {
        what: String,
        #[source]
        source: toml::ser::Error,
    },
    /// A board profile or configuration input is not usable.
    #[error("{0}")]
    Config(String),
    /// A Debian package cannot be resolved, downloaded or verified.
    #[error("{package}: {problem}")]
    Package { package: String, problem: String },
    /// `--locked`: pinned versions the archive no longer has (or packages without a pin).
    #[error("--locked refuses to change image/packages.lock:{}", Lines(.packages))]
    Locked { packages: Vec<String> },
    /// A roomcast.toml the box would refuse (`cargo image build --config`, `cargo image set-config`).
    #[error("{file} is not a valid roomcast.toml (nothing was written; --force writes it anyway):{}", Lines(.problems))]
    InvalidConfig { file: String, problems: Vec<String> },
    /// The kernel package lacks something the board needs.
    #[error("{0}")]
    Kernel(String),
    /// A binary needs something the arm64 sysroot does not have.
    #[error("{0}")]
    Sysroot(String),
    /// The disk image is not what it should be (partition table).
    #[error("{0}")]
    Disk(String),
    /// The host lacks a tool the build needs.
    #[error("{0}")]
    Host(String),
    /// Talking to QEMU (QMP socket, serial console) failed.
    #[error("{0}")]
    Qemu(String),
    /// Another error, with what was being done when it happened.
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
}

/// Formats a list one item per indented line.
struct Lines<'a>(&'a [String]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|l| write!(f, "\n  {l}"))
    }
}

/// Formats a command's output after its status line (nothing when it printed nothing).
struct CommandOutput<'a>(&'a String);

impl fmt::Display for CommandOutput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, ":\n{}", self.0)
        }
    }
}

/// Adds what was being done to an [`std::io::Error`].
pub trait IoContext<T> {
    /// Fails with [`Error::Io`] naming `what`.
    fn context_io(self, what: impl Into<String>) -> Result<T>;
    /// Like [`IoContext::context_io`], with the description made only on failure.
    fn with_context_io(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn context_io(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Io { what: what.into(), source })
    }

    fn with_context_io(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { what: what(), source })
    }
}

/// Adds what was being done to an [`Error`].
pub trait ErrorContext<T> {
    /// Wraps the error in [`Error::Context`] with the description made by `what`.
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> ErrorContext<T> for Result<T> {
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Context { what: what(), source: Box::new(source) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn command_errors_show_their_output_only_when_there_is_some() {
        let e = Error::Command { command: "sfdisk x".into(), status: "exit status: 1".into(), output: "bad".into() };
        assert_eq!(e.to_string(), "`sfdisk x` failed (exit status: 1):\nbad");
        let e =
            Error::Command { command: "cargo build".into(), status: "exit status: 101".into(), output: String::new() };
        assert_eq!(e.to_string(), "`cargo build` failed (exit status: 101)");
    }

    #[test]
    fn context_keeps_the_cause_as_source() {
        let io: std::io::Result<()> = Err(std::io::Error::new(std::io::ErrorKind::NotFound, "gone"));
        let e = io.context_io("reading /x").with_context(|| "in board profile /x".into()).unwrap_err();
        assert_eq!(e.to_string(), "in board profile /x");
        let io = e.source().unwrap();
        assert_eq!(io.to_string(), "reading /x");
        assert_eq!(io.source().unwrap().to_string(), "gone");
    }
}
