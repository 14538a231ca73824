//! Splits a data-driven test file into cases.

use std::ops::Range;

use crate::run::Error;

/// The separator between a case's input and its expected output. Doubled, it
/// opens and closes an output that may contain blank lines.
pub(crate) const SEPARATOR: &str = "----";

/// One argument of a command: `key`, `key=value` or `key=(v1, v2, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArg {
    /// The text before `=`, or the whole argument when it has no value.
    pub key: String,
    /// The values, trimmed; empty for a bare `key` and for `key=()`.
    pub vals: Vec<String>,
}

/// One case of a data-driven test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestData {
    /// `file:line` of the command, for messages.
    pub pos: String,
    /// The first word of the command line.
    pub cmd: String,
    /// The remaining words of the command line.
    pub cmd_args: Vec<CmdArg>,
    /// The lines between the command and the separator, joined by `\n`.
    pub input: String,
    /// The expected output; every line of it ends in `\n`.
    pub expected: String,
    /// Zero-based lines after the first separator that hold the expected
    /// output, closing separators included: what a rewrite replaces.
    pub(crate) output_lines: Range<usize>,
}

/// Parses the text of a test file; `file` only labels positions.
///
/// # Errors
///
/// [`Error::Syntax`] on a case without a separator, an unterminated doubled
/// separator or an unbalanced parenthesis in a command line.
pub fn parse(file: &str, text: &str) -> Result<Vec<TestData>, Error> {
    let lines: Vec<&str> = text.lines().collect();
    let syntax = |line: usize, reason: &str| Error::Syntax {
        pos: format!("{}:{}", file, line + 1),
        reason: reason.to_string(),
    };
    let mut cases = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        let cmd_line = i;
        let (cmd, cmd_args) = parse_command(line).map_err(|reason| syntax(cmd_line, reason))?;

        i += 1;
        let input_start = i;
        while i < lines.len() && lines[i] != SEPARATOR {
            i += 1;
        }
        if i == lines.len() {
            return Err(syntax(cmd_line, "case has no `----` separator"));
        }
        let input = lines[input_start..i].join("\n");
        i += 1;

        let output_start = i;
        let mut expected = String::new();
        if lines.get(i) == Some(&SEPARATOR) {
            i += 1;
            loop {
                match (lines.get(i), lines.get(i + 1)) {
                    (Some(&SEPARATOR), Some(&SEPARATOR)) => break,
                    (Some(line), _) => push_line(&mut expected, line),
                    (None, _) => return Err(syntax(cmd_line, "doubled `----` is never closed")),
                }
                i += 1;
            }
            i += 2;
        } else {
            while i < lines.len() && !lines[i].trim().is_empty() {
                push_line(&mut expected, lines[i]);
                i += 1;
            }
        }
        cases.push(TestData {
            pos: format!("{}:{}", file, cmd_line + 1),
            cmd,
            cmd_args,
            input,
            expected,
            output_lines: output_start..i,
        });
    }
    Ok(cases)
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

/// Splits a command line into its command and arguments. Whitespace
/// separates words except inside parentheses, so `idx=(13, 100)` is one
/// argument.
fn parse_command(line: &str) -> Result<(String, Vec<CmdArg>), &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut depth = 0usize;
    for c in line.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or("`)` without `(`")?,
            c if c.is_whitespace() && depth == 0 => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                continue;
            }
            _ => {}
        }
        word.push(c);
    }
    if depth != 0 {
        return Err("`(` without `)`");
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut words = words.into_iter();
    let cmd = words.next().ok_or("empty command")?;
    Ok((cmd, words.map(|w| parse_arg(&w)).collect()))
}

fn parse_arg(word: &str) -> CmdArg {
    let Some((key, value)) = word.split_once('=') else {
        return CmdArg {
            key: word.to_string(),
            vals: Vec::new(),
        };
    };
    let vals = match value.strip_prefix('(').and_then(|v| v.strip_suffix(')')) {
        Some(list) if list.trim().is_empty() => Vec::new(),
        Some(list) => list.split(',').map(|v| v.trim().to_string()).collect(),
        None => vec![value.to_string()],
    };
    CmdArg {
        key: key.to_string(),
        vals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(key: &str, vals: &[&str]) -> CmdArg {
        CmdArg {
            key: key.to_string(),
            vals: vals.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn arguments_keep_parenthesised_lists_whole() {
        let cases = parse(
            "t.txt",
            "# comment\ncommitted cfg=(1, 2) cfgj=zero idx=(_,40) joint l=()\n----\n40\n",
        )
        .unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].pos, "t.txt:2");
        assert_eq!(cases[0].cmd, "committed");
        assert_eq!(
            cases[0].cmd_args,
            vec![
                arg("cfg", &["1", "2"]),
                arg("cfgj", &["zero"]),
                arg("idx", &["_", "40"]),
                arg("joint", &[]),
                arg("l", &[]),
            ]
        );
        assert_eq!(cases[0].expected, "40\n");
    }

    #[test]
    fn input_and_outputs_split_on_blank_lines() {
        let text = "simple\nv1\nv2 l3\n----\nvoters=(1)\n1: StateProbe\n\nleave-joint\n----\n\nnext\n----\nok\n";
        let cases = parse("t.txt", text).unwrap();
        assert_eq!(cases.len(), 3);
        assert_eq!(cases[0].input, "v1\nv2 l3");
        assert_eq!(cases[0].expected, "voters=(1)\n1: StateProbe\n");
        assert_eq!(cases[1].input, "");
        assert_eq!(cases[1].expected, "");
        assert_eq!(cases[2].pos, "t.txt:11");
    }

    #[test]
    fn doubled_separator_allows_blank_lines_in_output() {
        let text = "cmd\n----\n----\na\n\nb\n----\n----\n\nnext\n----\nc\n";
        let cases = parse("t.txt", text).unwrap();
        assert_eq!(cases[0].expected, "a\n\nb\n");
        assert_eq!(cases[0].output_lines, 2..8);
        assert_eq!(cases[1].expected, "c\n");
    }

    #[test]
    fn malformed_cases_are_rejected_with_their_position() {
        for (text, reason) in [
            ("cmd\ninput\n", "case has no `----` separator"),
            ("cmd\n----\n----\nout\n", "doubled `----` is never closed"),
            ("\ncmd a=(1,2\n----\n", "`(` without `)`"),
            ("\ncmd a=1)\n----\n", "`)` without `(`"),
        ] {
            match parse("t.txt", text) {
                Err(Error::Syntax { pos, reason: r }) => {
                    assert!(pos.starts_with("t.txt:"), "{pos}");
                    assert_eq!(r, reason);
                }
                other => panic!("{text:?} parsed as {other:?}"),
            }
        }
    }
}
