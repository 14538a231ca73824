//! Runs the cases of test files and compares, or rewrites, their outputs.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use slog::Logger;

use crate::parse::{parse, TestData, SEPARATOR};

/// Why a data-driven test did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A test file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A rewritten test file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A test file is malformed.
    #[error("{pos}: {reason}")]
    Syntax {
        /// `file:line` of the case.
        pos: String,
        /// What is wrong.
        reason: String,
    },
    /// Cases produced output other than the file expects.
    #[error("{failed} of {total} cases in {path} produced unexpected output:\n{report}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// How many cases failed.
        failed: usize,
        /// How many cases the file holds.
        total: usize,
        /// Each failed case with its expected and actual output.
        report: String,
    },
}

/// Calls `f` on `path` if it is a file, or on every file below it, in name
/// order, if it is a directory.
///
/// # Errors
///
/// The first error `f` returns, or [`Error::Read`] if a directory cannot be
/// listed.
pub fn walk<F>(path: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut(&Path) -> anyhow::Result<()>,
{
    walk_path(Path::new(path), &mut f)
}

fn walk_path(path: &Path, f: &mut dyn FnMut(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    if !path.is_dir() {
        return f(path);
    }
    let read = |source| Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut children = fs::read_dir(path)
        .map_err(read)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    children.sort();
    for child in &children {
        walk_path(child, f)?;
    }
    Ok(())
}

/// Runs every case of the test file at `path` (or of every file below it)
/// through `f` and compares what `f` returns with the expected output.
///
/// With `rewrite`, the files are rewritten with the outputs `f` produced
/// instead, which is how expected outputs are regenerated after an intended
/// change.
///
/// # Errors
///
/// [`Error::Mismatch`] listing every case whose output differs, or an error
/// reading, parsing or rewriting a file.
pub fn run_test<F>(path: &str, mut f: F, rewrite: bool, logger: &Logger) -> anyhow::Result<()>
where
    F: FnMut(&TestData) -> String,
{
    walk(path, |file| Ok(run_file(file, &mut f, rewrite, logger)?))
}

fn run_file(
    path: &Path,
    f: &mut dyn FnMut(&TestData) -> String,
    rewrite: bool,
    logger: &Logger,
) -> Result<(), Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let cases = parse(&path.display().to_string(), &text)?;
    let mut outputs = Vec::with_capacity(cases.len());
    let mut report = String::new();
    let mut failed = 0;
    for case in &cases {
        slog::debug!(logger, "data-driven case"; "pos" => &case.pos, "cmd" => &case.cmd);
        let actual = as_block(f(case));
        if actual != case.expected {
            failed += 1;
            let _ = write!(
                report,
                "{} {}\nexpected:\n{}actual:\n{}\n",
                case.pos, case.cmd, case.expected, actual
            );
        }
        outputs.push(actual);
    }
    if rewrite {
        return fs::write(path, rewritten(&text, &cases, &outputs)).map_err(|source| {
            Error::Write {
                path: path.to_path_buf(),
                source,
            }
        });
    }
    if failed > 0 {
        return Err(Error::Mismatch {
            path: path.to_path_buf(),
            failed,
            total: cases.len(),
            report,
        });
    }
    Ok(())
}

/// An output as the file holds it: empty, or lines each ending in `\n`.
fn as_block(mut output: String) -> String {
    if !output.is_empty() && !output.ends_with('\n') {
        output.push('\n');
    }
    output
}

/// `text` with each case's expected output replaced by `outputs`, doubling
/// the separator where an output contains a blank line.
fn rewritten(text: &str, cases: &[TestData], outputs: &[String]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    let mut next = 0;
    for (case, output) in cases.iter().zip(outputs) {
        for line in &lines[next..case.output_lines.start] {
            out.push_str(line);
            out.push('\n');
        }
        let doubled = output.starts_with('\n') || output.contains("\n\n");
        if doubled {
            out.push_str(SEPARATOR);
            out.push('\n');
        }
        out.push_str(output);
        if doubled {
            out.push_str(SEPARATOR);
            out.push('\n');
            out.push_str(SEPARATOR);
            out.push('\n');
        }
        next = case.output_lines.end;
    }
    for line in &lines[next..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    fn echo_input(data: &TestData) -> String {
        data.input.clone()
    }

    #[test]
    fn wrong_output_is_reported_with_position() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.txt");
        fs::write(&file, "echo\nyes\n----\nyes\n\necho\nno\n----\nyes\n").unwrap();
        let err = run_test(file.to_str().unwrap(), echo_input, false, &logger()).unwrap_err();
        match err.downcast_ref::<Error>() {
            Some(Error::Mismatch {
                failed,
                total,
                report,
                ..
            }) => {
                assert_eq!((*failed, *total), (1, 2));
                assert!(
                    report.contains("t.txt:6 echo\nexpected:\nyes\nactual:\nno\n"),
                    "{report}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rewrite_regenerates_expected_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.txt");
        fs::write(
            &file,
            "# keep me\necho\nnew\n----\nold\n\necho\na\n\nb\n----\n----\nx\n----\n----\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        run_test(path, echo_input, true, &logger()).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "# keep me\necho\nnew\n----\nnew\n\necho\na\n\nb\n----\n----\na\n\nb\n----\n----\n"
        );
        run_test(path, echo_input, false, &logger()).unwrap();
    }

    #[test]
    fn rewrite_doubles_the_separator_for_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.txt");
        fs::write(&file, "para\n----\none\n\nnext\n----\n\n").unwrap();
        let path = file.to_str().unwrap();
        let paragraphs = |d: &TestData| format!("{}\n\nend\n", d.cmd);
        run_test(path, paragraphs, true, &logger()).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "para\n----\n----\npara\n\nend\n----\n----\n\nnext\n----\n----\nnext\n\nend\n----\n----\n\n"
        );
        run_test(path, paragraphs, false, &logger()).unwrap();
    }

    #[test]
    fn walk_visits_files_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        for name in ["b.txt", "a.txt", "sub/c.txt"] {
            fs::write(dir.path().join(name), "").unwrap();
        }
        let mut seen = Vec::new();
        walk(dir.path().to_str().unwrap(), |p| {
            seen.push(p.strip_prefix(dir.path()).unwrap().to_path_buf());
            Ok(())
        })
        .unwrap();
        let expected: Vec<PathBuf> = ["a.txt", "b.txt", "sub/c.txt"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(seen, expected);
    }
}
