//! Writes the seed corpora of the kms fuzz targets (see `fuzz/README.md`):
//! `cargo run -p govtrust-kms --example fuzz_seeds -- fuzz/corpus`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: fuzz_seeds CORPUS_DIR")?;
    for seed in govtrust_kms::fuzzing::seeds()? {
        let dir = corpus.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes)?;
    }
    Ok(())
}
