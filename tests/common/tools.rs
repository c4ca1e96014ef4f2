//! External tools (openssl, keytool, curl, java, python) run as child processes. A failure
//! names the command and shows what it printed.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tool ARGS` in `dir`; it must succeed. Returns what it printed on stdout.
pub fn run(tool: &str, args: &[&str], dir: &Path) -> String {
    let out = run_ok(Command::new(tool).args(args).current_dir(dir));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `command`, which must start and succeed, and returns its output.
pub fn run_ok(command: &mut Command) -> Output {
    let out = run_any(command);
    assert!(out.status.success(), "{}", report(command, &out));
    out
}

/// Runs `command`, which must start, whatever its exit status.
pub fn run_any(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("FAIL: {} is required ({e})", describe(command)))
}

/// The command, how it exited, and what it printed: the message of a failed check on it.
pub fn report(command: &Command, out: &Output) -> String {
    format!(
        "{} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        describe(command),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    if let Some(dir) = command.get_current_dir() {
        text.push_str(&format!(" (in {})", dir.display()));
    }
    text
}

/// Bytes from hex digits (as tools print serials and fingerprints), `:` separators allowed.
pub fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}
