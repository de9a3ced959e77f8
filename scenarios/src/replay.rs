//! `--replay RUN_DIR`: run again what a run ran. Every report records the command line that
//! made it (`run.parameters.command`, without `--out`); replaying puts that command first and
//! the arguments given now after it, so they override it (`--out` for a new directory, say).
//! The seed, the fault schedule and every parameter come back with it: a fault-matrix cell
//! (`RUN_DIR/<cell>`) replays that cell alone, the matrix's own directory the whole matrix.

use std::ffi::OsString;
use std::path::Path;

use crate::error::{Error, Result};

/// The flag.
pub const FLAG: &str = "--replay";

/// The command line to parse: `argv` itself, or with `--replay DIR`, the program, then the
/// command recorded in DIR's report, then the other arguments of `argv`.
pub fn expand(argv: Vec<OsString>) -> Result<Vec<OsString>> {
    let mut rest = Vec::new();
    let mut dir = None;
    let mut args = argv.into_iter();
    let program = args.next().unwrap_or_else(|| "scenario".into());
    while let Some(a) = args.next() {
        let text = a.to_string_lossy();
        if text == FLAG {
            dir = Some(
                args.next()
                    .ok_or_else(|| Error::Usage(format!("{FLAG} needs a run directory")))?,
            );
        } else if let Some(d) = text.strip_prefix("--replay=") {
            dir = Some(d.into());
        } else {
            rest.push(a);
        }
    }
    let Some(dir) = dir else {
        let mut all = vec![program];
        all.extend(rest);
        return Ok(all);
    };
    let recorded = recorded_command(Path::new(&dir))?;
    // `scenario --replay DIR flash-sale …`: the recorded scenario already names it.
    if rest.first().map(|a| a.to_string_lossy()) == recorded.first().map(|s| s.as_str().into()) {
        rest.remove(0);
    }
    let mut all = vec![program];
    all.extend(recorded.into_iter().map(OsString::from));
    all.extend(rest);
    Ok(all)
}

/// What a run records as its command: `argv` without the program, `--out` and `--replay`.
pub fn recordable(argv: &[OsString]) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = argv
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = args.next() {
        if a == "--out" || a == FLAG {
            args.next();
        } else if !(a.starts_with("--out=") || a.starts_with("--replay=")) {
            out.push(a);
        }
    }
    out
}

/// The command recorded in `dir/report.json` (or `dir` itself when it is a report file).
fn recorded_command(dir: &Path) -> Result<Vec<String>> {
    let path = if dir.is_file() {
        dir.to_path_buf()
    } else {
        dir.join(reports::JSON_FILE)
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Usage(format!("{FLAG}: reading {}: {e}", path.display())))?;
    let report = reports::Report::from_json(&text)
        .map_err(|e| Error::Usage(format!("{FLAG}: {}: {e}", path.display())))?;
    let command = report.run.parameters.get("command").ok_or_else(|| {
        Error::Usage(format!(
            "{FLAG}: {} records no command (made before replays were recorded)",
            path.display()
        ))
    })?;
    serde_json::from_value(command.clone())
        .map_err(|e| Error::Usage(format!("{FLAG}: {}: the command: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_recorded_command_drops_the_program_out_and_replay() {
        let argv = os(&[
            "/bin/scenario",
            "flash-sale",
            "--out",
            "/tmp/x",
            "-u",
            "5",
            "--replay=/a",
            "--out=/b",
            "--seed",
            "9",
        ]);
        assert_eq!(recordable(&argv), ["flash-sale", "-u", "5", "--seed", "9"]);
    }

    #[test]
    fn a_replay_puts_the_recorded_command_first_and_the_new_arguments_after() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = reports::Report::new(reports::RunInfo::default());
        report.run.parameters.insert(
            "command".into(),
            serde_json::json!(["fault-matrix", "--cells", "kafka:kill", "--seed", "3"]),
        );
        std::fs::write(
            dir.path().join(reports::JSON_FILE),
            serde_json::to_string(&report).unwrap(),
        )
        .unwrap();
        let d = dir.path().to_str().unwrap();
        let argv = expand(os(&[
            "scenario",
            "fault-matrix",
            "--replay",
            d,
            "--out",
            "/o",
        ]))
        .unwrap();
        assert_eq!(
            argv,
            os(&[
                "scenario",
                "fault-matrix",
                "--cells",
                "kafka:kill",
                "--seed",
                "3",
                "--out",
                "/o"
            ])
        );
        assert_eq!(
            expand(os(&["scenario", "-u", "3"])).unwrap(),
            os(&["scenario", "-u", "3"])
        );
        let e = expand(os(&["scenario", "--replay", "/nonexistent"])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent"), "{e}");
        assert_eq!(e.exit_code(), reports::exit_code::USAGE);
    }
}
