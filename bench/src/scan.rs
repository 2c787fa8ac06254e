//! The floor for `authtap replay`: read a capture line by line as authtap does (64 KiB buffer, one
//! UTF-8 check per line) and have serde_json parse each line into nothing (`IgnoredAny`). No reader
//! built on serde_json can be faster, so replay ÷ scan is what authtap's own work costs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use serde::de::IgnoredAny;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A capture (JSON lines)
    pub file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut input = BufReader::with_capacity(64 * 1024, file);
    let mut line = Vec::with_capacity(8 * 1024);
    let mut records = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = std::str::from_utf8(&line).context("not UTF-8")?;
        let mut de = serde_json::Deserializer::from_str(text);
        serde::Deserialize::deserialize(&mut de).map(|IgnoredAny| ())?;
        de.end()?;
        records += 1;
    }
    println!("{records}");
    Ok(())
}
