//! The README's walk-through, run as written against a dev server, every command in order.
//!
//! Only the environment differs: `gt` runs the binary under test instead of `cargo run`, the
//! server listens on free ports (`GOVTRUST_SERVER` points the commands at it) and the HTTP
//! port's address replaces the default `127.0.0.1:8080` in the commands that name it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::{Server, binary};

/// The first ```sh block after `heading` in the README.
fn block_after(heading: &str) -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split(heading)
        .nth(1)
        .expect("the heading is in the README");
    let block = section.split("```sh\n").nth(1).expect("a sh block follows");
    block.split("```").next().unwrap().to_owned()
}

#[test]
fn the_walk_through_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("govtrust-dev"), true);
    let script = block_after("## Walk-through");
    let gt = "gt() { cargo run --release -q -- \"$@\"; }";
    assert!(
        script.contains(gt),
        "the walk-through defines gt as the README says"
    );
    let script = script
        .replace(gt, "gt() { \"$GOVTRUST_BIN\" \"$@\"; }")
        .replace("http://127.0.0.1:8080", &server.http);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("GOVTRUST_BIN", binary())
        .env("GOVTRUST_SERVER", &server.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the walk-through failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server\n{}",
        server.log()
    );
    assert!(stdout.contains("tax-portal/cert.pem: OK"), "{stdout}");
    assert!(
        stdout.contains("secret"),
        "the decrypted plaintext: {stdout}"
    );
    let ocsp: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("tax-portal/cert.pem: "))
        .collect();
    assert_eq!(
        ocsp,
        [
            "tax-portal/cert.pem: OK",
            "tax-portal/cert.pem: good",
            "tax-portal/cert.pem: revoked"
        ],
        "{stdout}"
    );
    assert!(stdout.contains("Reason: superseded"), "{stdout}");
    assert!(stdout.contains("enrollment token (shown once"), "{stdout}");
}

#[test]
fn decrypt_ends_its_line_on_a_terminal_and_writes_the_plaintext_exactly_into_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    let admin = server.admin("security-admin");
    let key = server.create_key(&admin, "aes-256-gcm", &[]);
    let key = key["key_id"].as_str().unwrap();
    let ciphertext = support::ok(server.gt_as(
        &admin,
        &["kms", "key", "encrypt", key, "--plaintext", "no newline"],
    ));
    let piped = support::ok(server.gt_as(
        &admin,
        &["kms", "key", "decrypt", "--ciphertext", ciphertext.trim()],
    ));
    assert_eq!(piped, "no newline");
    let command = format!(
        "{} kms key decrypt --ciphertext {}",
        binary(),
        ciphertext.trim()
    );
    let terminal = on_a_terminal(&command, |script| {
        script
            .env("GOVTRUST_SERVER", &server.url)
            .env("GOVTRUST_CA", server.root())
            .env("GOVTRUST_IDENTITY", &admin);
    });
    assert!(terminal.contains("no newline\r\n"), "{terminal:?}");
}

/// What `command` (a shell command line) writes when `script` gives it a terminal as its
/// standard output; `setup` adds to the `script` command (its environment).
fn on_a_terminal(command: &str, setup: impl FnOnce(&mut Command)) -> String {
    let mut script = Command::new("script");
    script.args(["-qec", command, "/dev/null"]);
    setup(&mut script);
    let output = script.output().expect("script (util-linux) is installed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn server_logs_are_coloured_on_a_terminal_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::dev(dir.path());
    server.admin("security-admin");
    let log = server.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape codes in a log file: {log:?}"
    );
    drop(server);

    // The same server on a terminal (`script` gives it one) colours its levels.
    let data = dir.path().join("on-a-terminal");
    let command = format!(
        "timeout -s TERM 4 {} serve --dev --data {} --listen 127.0.0.1:0 --http-listen 127.0.0.1:0",
        binary(),
        data.display()
    );
    let terminal = on_a_terminal(&command, |_| {});
    assert!(terminal.contains("INFO"), "{terminal:?}");
    assert!(
        terminal.contains("\u{1b}["),
        "no colour on a terminal: {terminal:?}"
    );
}
