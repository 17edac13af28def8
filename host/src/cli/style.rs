//! Colour for human output: only on a terminal, never when `NO_COLOR` is set.

use std::io::IsTerminal;

/// Whether to colour one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    /// Styling for stderr, where progress, logs and errors go.
    pub(crate) fn stderr() -> Self {
        Self::for_terminal(std::io::stderr().is_terminal())
    }

    /// Styling for stdout, for reports that are the command's result.
    pub(crate) fn stdout() -> Self {
        Self::for_terminal(std::io::stdout().is_terminal())
    }

    /// No colour, wherever it goes.
    pub(crate) fn plain() -> Self {
        Self { color: false }
    }

    fn for_terminal(terminal: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: !no_color && terminal,
        }
    }

    /// Whether colour is on.
    pub(crate) fn color(self) -> bool {
        self.color
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub(crate) fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub(crate) fn warn(self, text: &str) -> String {
        self.paint("1;33", text)
    }

    pub(crate) fn good(self, text: &str) -> String {
        self.paint("1;32", text)
    }

    pub(crate) fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Guest text made safe for a terminal: control characters other than
/// newline and tab (escape sequences could rewrite the screen or fake Cairn's
/// own output) are shown as `\x1b`-style escapes instead of being sent.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Write guest output to `stream`: raw when it is a file or pipe (it is the
/// task's data), made [`printable`] when it is a terminal.
pub(crate) fn write_guest_output(mut stream: impl std::io::Write + IsTerminal, bytes: &[u8]) {
    let result = if stream.is_terminal() {
        stream.write_all(printable(bytes).as_bytes())
    } else {
        stream.write_all(bytes)
    };
    // Nowhere left to report a failed write to our own stdout or stderr.
    let _ = result.and_then(|()| stream.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(
            printable(b"ok\x1b[2J\x07 done\n\tnext"),
            "ok\\u{1b}[2J\\u{7} done\n\tnext"
        );
        assert_eq!(printable(b"caf\xc3\xa9"), "café");
    }
}
