//! Writes the sample report four ways into a directory (default `target/report-preview`), to
//! look at the renderers without running the lab:
//! `cargo run -p reports --example preview -- /tmp/report && open /tmp/report/report.html`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/report-preview"), PathBuf::from);
    let written = reports::write_all(&reports::sample_report(), &dir)?;
    println!("{}", written.html.display());
    Ok(())
}
