//! Behaviour of the redb backend beyond the conformance suite: durability across reopen and
//! across `kill -9`, opening errors, and group commit under many committers.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use govtrust_store::{Batch, Error, RedbStore, Store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Set in the child process of [`kill_9_keeps_acknowledged_batches`]: the store file it writes.
const CRASH_WRITER: &str = "GOVTRUST_STORE_CRASH_WRITER";

/// Acknowledgements the parent waits for before killing the child.
const ACKS_BEFORE_KILL: u64 = 100;

#[test]
fn data_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    let store = RedbStore::open(&path)?;
    let mut batch = Batch::new();
    batch
        .put("k", "v")
        .append("log/", "one")
        .append("log/", "two");
    store.commit(batch)?;
    drop(store);

    let store = RedbStore::open(&path)?;
    assert_eq!(store.get(b"k")?, Some(b"v".to_vec()));
    assert_eq!(store.scan(b"log/", None, 10)?.len(), 2);
    let mut batch = Batch::new();
    batch.append("log/", "three");
    let appended = store.commit(batch)?.appended;
    assert_eq!(
        appended,
        [[b"log/".as_slice(), &3u64.to_be_bytes()].concat()]
    );
    Ok(())
}

#[test]
fn open_fails_on_a_file_that_is_not_a_store() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("garbage");
    std::fs::write(&path, vec![0x5a; 8192])?;
    let opened = RedbStore::open(&path);
    let named = matches!(&opened, Err(Error::Open { path: reported, .. }) if *reported == path);
    assert!(
        named,
        "expected Error::Open naming the file, got {:?}",
        opened.err()
    );
    Ok(())
}

#[test]
fn kill_9_keeps_acknowledged_batches() -> TestResult {
    if let Some(path) = std::env::var_os(CRASH_WRITER) {
        return write_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "kill_9_keeps_acknowledged_batches",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_WRITER, &path)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut acknowledged = Vec::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if let Some(seq) = line?.strip_prefix("ack ") {
            acknowledged.push(seq.parse::<u64>()?);
            if acknowledged.len() as u64 == ACKS_BEFORE_KILL {
                child.kill()?; // SIGKILL on unix
                break;
            }
        }
    }
    child.wait()?;
    // Acknowledgements printed before the kill may still sit in the pipe.
    for line in lines {
        if let Some(seq) = line?.strip_prefix("ack ") {
            acknowledged.push(seq.parse()?);
        }
    }
    assert!(
        acknowledged.len() as u64 >= ACKS_BEFORE_KILL,
        "child stopped early"
    );

    let store = RedbStore::open(&path)?;
    for seq in &acknowledged {
        let key = format!("crash/{seq:08}");
        assert_eq!(
            store.get(key.as_bytes())?,
            Some(seq.to_string().into_bytes()),
            "{key} lost"
        );
    }
    let logged = store.scan(b"crashlog/", None, usize::MAX)?.len() as u64;
    assert!(logged >= acknowledged.len() as u64);
    eprintln!(
        "{} acknowledged batches survived kill -9",
        acknowledged.len()
    );
    Ok(())
}

/// The child: commits until killed, printing `ack <seq>` once each commit has returned.
fn write_until_killed(path: &Path) -> TestResult {
    let store = RedbStore::open(path)?;
    // Bounded, so an orphaned child cannot run forever.
    for seq in 1..=100_000u64 {
        let mut batch = Batch::new();
        batch
            .put(format!("crash/{seq:08}"), seq.to_string())
            .append("crashlog/", "v");
        store.commit(batch)?;
        println!("ack {seq}");
    }
    Ok(())
}

#[test]
fn group_commit_under_64_committers() -> TestResult {
    const THREADS: usize = 64;
    const BATCHES: usize = 20;
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(&dir.path().join("store.redb"))?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        let store = &store;
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || -> Result<(), Error> {
                    for i in 0..BATCHES {
                        let mut batch = Batch::new();
                        batch.put(format!("group/{t:02}/{i:02}"), "v");
                        store.commit(batch)?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| "committer panicked")?
                .map_err(Into::into)
        })
    })
    .map_err(|e: Box<dyn std::error::Error>| e)?;
    let elapsed = started.elapsed();
    assert_eq!(
        store.scan(b"group/", None, usize::MAX)?.len(),
        THREADS * BATCHES
    );
    let rate = (THREADS * BATCHES) as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{} durable batches from {THREADS} threads in {elapsed:?}: {rate:.0}/s",
        THREADS * BATCHES
    );
    Ok(())
}
