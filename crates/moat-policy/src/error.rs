//! Errors of policy loading, with compiler-style positions.

use std::fmt;
use std::path::PathBuf;

/// A parse error pointing at a place in a policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or other source) name.
    pub file: String,
    /// 1-based line, when the format reports it.
    pub line: Option<usize>,
    /// 1-based column, when the format reports it.
    pub column: Option<usize>,
    /// The key path of the offending value (`filesystem.rule[0].rights[1]`), or empty.
    pub key: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
    /// The offending source line, for the snippet under the message.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// Fills `line`, `column` and `source_line` from a byte offset into `text`.
    pub fn at_offset(mut self, text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        self.line = Some(line);
        self.column = Some(column);
        self.source_line = text.lines().nth(line - 1).map(str::to_string);
        self
    }

    /// Fills `line`, `column` and `source_line` from a 1-based line and column.
    pub fn at_line_column(mut self, text: &str, line: usize, column: usize) -> Self {
        if line > 0 {
            self.line = Some(line);
            self.column = Some(column.max(1));
            self.source_line = text.lines().nth(line - 1).map(str::to_string);
        }
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "`{}`: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = line.to_string().len();
            let (shown, col) = excerpt(text, self.column);
            write!(f, "\n{:gutter$} |\n{line} | {shown}", "")?;
            if let Some(col) = col {
                let pad: String = shown
                    .chars()
                    .take(col.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                write!(f, "\n{:gutter$} | {pad}^", "")?;
            }
        }
        Ok(())
    }
}

/// Lines longer than this many characters are shown as a window around the column: a
/// minified JSON policy (an annotation, `--policy-text`) is one line of any length.
const MAX_SHOWN: usize = 100;

/// The part of `text` to show and the column within it: all of a short line, else
/// [`MAX_SHOWN`] characters around `column` with `…` where the line goes on.
fn excerpt(text: &str, column: Option<usize>) -> (String, Option<usize>) {
    let len = text.chars().count();
    if len <= MAX_SHOWN {
        return (text.to_string(), column);
    }
    let at = column.unwrap_or(1).saturating_sub(1).min(len);
    let start = at.saturating_sub(MAX_SHOWN / 2).min(len - MAX_SHOWN);
    let end = start + MAX_SHOWN;
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(text.chars().skip(start).take(MAX_SHOWN));
    if end < len {
        shown.push('…');
    }
    let col = column.map(|_| at - start + 1 + usize::from(start > 0));
    (shown, col)
}

/// Everything that can go wrong while loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A document that does not parse or means nothing valid.
    #[error("{0}")]
    Parse(Box<Diagnostic>),
    /// A policy file that cannot be read.
    #[error("{}: cannot read policy file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A preset name moat does not ship.
    #[error("unknown preset `{name}` (available: {available})")]
    UnknownPreset {
        /// The name asked for.
        name: String,
        /// The names moat ships.
        available: String,
    },
    /// A `${NAME}` reference with no value.
    #[error("{origin}: `${{{name}}}` in `{path}` is not a known variable (known: {known})")]
    UndefinedVariable {
        /// Where the path was written.
        origin: String,
        /// The path.
        path: String,
        /// The variable.
        name: String,
        /// The variables that exist.
        known: String,
    },
    /// A rule that is well-formed but cannot mean anything (empty path, relative path, ...).
    #[error("{origin}: {message}")]
    Invalid {
        /// Where it was written.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

impl PolicyError {
    /// A parse error without a position.
    pub fn parse(file: &str, key: &str, message: impl Into<String>) -> Self {
        PolicyError::Parse(Box::new(Diagnostic {
            file: file.to_string(),
            line: None,
            column: None,
            key: key.to_string(),
            message: message.into(),
            source_line: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_compiler() {
        let text = "a = 1\nrights = [\"read_fil\"]\n";
        let d = Diagnostic {
            file: "p.toml".into(),
            line: None,
            column: None,
            key: "rights[0]".into(),
            message: "unknown right".into(),
            source_line: None,
        }
        .at_offset(text, 16);
        assert_eq!(d.line, Some(2));
        assert_eq!(d.column, Some(11));
        let shown = d.to_string();
        assert!(
            shown.starts_with("p.toml:2:11: `rights[0]`: unknown right"),
            "{shown}"
        );
        assert!(shown.ends_with("|           ^"), "{shown}");
    }

    #[test]
    fn a_long_line_is_shown_around_the_column() {
        let text = format!(
            "{{\"a\":[{}],\"bad\":1,\"z\":[{}]}}",
            "1,".repeat(500) + "1",
            "2,".repeat(500) + "2"
        );
        let at = text.find("\"bad\"").unwrap();
        let d = Diagnostic {
            file: "--policy-text".into(),
            line: None,
            column: None,
            key: "bad".into(),
            message: "unknown field".into(),
            source_line: None,
        }
        .at_offset(&text, at);
        let shown = d.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 4, "{shown}");
        assert!(lines[2].chars().count() < MAX_SHOWN + 10, "{shown}");
        assert!(
            lines[2].starts_with("1 | …") && lines[2].ends_with('…'),
            "{shown}"
        );
        // The caret sits under the offending key.
        let caret = lines[3].chars().count() - 1;
        assert_eq!(lines[2].chars().nth(caret), Some('"'), "{shown}");
        assert_eq!(
            lines[2].chars().skip(caret).collect::<String>()[..6].to_string(),
            "\"bad\":"
        );
        // Near either end, the window stops at the line's end.
        for at in [0, text.len() - 1] {
            let d = Diagnostic {
                file: "x".into(),
                line: None,
                column: None,
                key: String::new(),
                message: "m".into(),
                source_line: None,
            }
            .at_offset(&text, at);
            let shown = d.to_string();
            let lines: Vec<&str> = shown.lines().collect();
            let caret = lines[3].chars().count() - 1;
            assert_eq!(
                lines[2].chars().nth(caret),
                text[at..].chars().next(),
                "{shown}"
            );
        }
    }
}
