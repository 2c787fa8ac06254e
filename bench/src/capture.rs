//! Makes a large capture for `authtap replay` from a real one: the records of a capture that
//! `authtap run` wrote during the load runs (200s, SSE streams, 401s with findings, plain and TLS)
//! are sampled evenly per kind and repeated, each copy with its own `id`, up to `--records` lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A capture written by `authtap run`
    #[arg(long)]
    pub from: PathBuf,
    /// Number of records to write
    #[arg(long)]
    pub records: u64,
    /// Output file
    #[arg(long)]
    pub out: PathBuf,
}

/// Records kept per kind (status, route, stream) from the source capture.
const PER_KIND: usize = 200;
const ID_MARK: &str = "@@BENCH_ID@@";

pub fn run(args: Args) -> anyhow::Result<()> {
    let n = generate(&args)?;
    eprintln!("wrote {n} records to {}", args.out.display());
    Ok(())
}

pub fn generate(args: &Args) -> anyhow::Result<u64> {
    let src = std::fs::File::open(&args.from)
        .with_context(|| format!("opening {}", args.from.display()))?;
    let mut kinds: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in BufReader::new(src).lines() {
        let line = line?;
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let kind = format!("{}|{}|{}", v["status"], v["route"], v["stream"]);
        let slot = kinds.entry(kind).or_default();
        if slot.len() >= PER_KIND {
            continue;
        }
        v["id"] = serde_json::Value::String(ID_MARK.to_owned());
        let s = serde_json::to_string(&v)?;
        let (pre, post) = s.split_once(ID_MARK).context("id marker")?;
        slot.push((pre.to_owned(), post.to_owned()));
    }
    // Interleave the kinds so any prefix of the output has the same mix.
    let mut mix = Vec::new();
    let longest = kinds.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for recs in kinds.values() {
            if let Some(r) = recs.get(i) {
                mix.push(r);
            }
        }
    }
    if mix.is_empty() {
        bail!("{} has no records", args.from.display());
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&args.out)?);
    for i in 0..args.records {
        let (pre, post) = mix[(i % mix.len() as u64) as usize];
        writeln!(out, "{pre}bench000-{i}{post}")?;
    }
    out.flush()?;
    Ok(args.records)
}
