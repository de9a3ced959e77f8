//! Where a run's options come from besides the command line: a TOML file (`--config
//! lab.toml`) and `SCENARIO_<OPTION>` environment variables; and `--print-config`, which
//! writes the effective options as a config file that gives the same run when fed back.
//!
//! Precedence, highest first: the command line, the environment, the config file, the
//! defaults. The file's keys are the long option names (`users`, `max-recovery`, `p99`…,
//! `snake_case` accepted too) and `scenario`, in any tables, which only group them for the
//! reader (`[load]`, `[stack]`, `[chaos]`, `[verdict]`); `--print-config` groups them by
//! their `--help` heading. The file is turned into `--option=value` tokens placed before the
//! command line, except for options the command line or the environment already sets, and
//! the whole is parsed by the one `clap` definition, so a file value is checked exactly as a
//! flag is. Every option with a long name reads `SCENARIO_<LONG_NAME>` (upper case, `-` as
//! `_`: `SCENARIO_RUN_TIME=30s`), Goose's included; the admin credentials keep their
//! `BOXOFFICE_ADMIN_*` names, shared with the box office.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// Prefix of the environment variable of every option.
pub const ENV_PREFIX: &str = "SCENARIO_";
/// Id (and long name) of the config file option.
const CONFIG: &str = "config";
/// Id (and long name) of the print-config flag.
const PRINT_CONFIG: &str = "print-config";
/// The positional scenario name, as a config key.
const SCENARIO: &str = "scenario";
/// Options that are not run settings: never read from the environment or written out.
const NOT_SETTINGS: [&str; 4] = ["help", "version", CONFIG, PRINT_CONFIG];

/// What a `scenario` command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// A run (or `list`) with these options.
    Run(Box<Cli>),
    /// `--print-config`: this TOML text, the effective options.
    PrintConfig(String),
}

/// The `SCENARIO_…` variable of a long option name.
pub fn env_name(long: &str) -> String {
    format!("{ENV_PREFIX}{}", long.replace('-', "_").to_uppercase())
}

/// The `scenario` command: [`Cli`] with `--config`, `--print-config` and an environment
/// variable for every option.
pub fn command() -> Command {
    let cmd = Cli::command()
        .arg(
            Arg::new(CONFIG)
                .long(CONFIG)
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .env(env_name(CONFIG))
                .help_heading("Configuration")
                .help("Read options from this TOML file (long option names as keys; the command line and SCENARIO_* variables override it)"),
        )
        .arg(
            Arg::new(PRINT_CONFIG)
                .long(PRINT_CONFIG)
                .action(ArgAction::SetTrue)
                .help_heading("Configuration")
                .help("Print the effective options as a config file and exit"),
        );
    cmd.mut_args(|arg| match arg.get_long() {
        Some(long) if arg.get_env().is_none() && !NOT_SETTINGS.contains(&long) => {
            let name = env_name(long);
            arg.env(name)
        }
        _ => arg,
    })
}

/// Whether `name` is the environment variable of a `scenario` option (child runs drop
/// those: a child gets exactly the options its parent forwards).
pub fn is_option_env(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    name.starts_with(ENV_PREFIX)
        && command()
            .get_arguments()
            .any(|a| a.get_env().is_some_and(|e| e.to_str() == Some(name)))
}

/// Parses a command line (`args[0]` is the program), with the environment and the config
/// file it names. Errors are clap's (a config file's problems included), so they print and
/// exit as usage errors (exit 2).
pub fn parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut cmd = command();
    let first = cmd.try_get_matches_from_mut(&args)?;
    let config = first.get_one::<PathBuf>(CONFIG).cloned();
    let matches = match config {
        Some(path) => {
            let (positional, options) = config_tokens(&mut cmd, &path, &first)?;
            let mut all = Vec::with_capacity(args.len() + options.len() + 1);
            all.extend(args.first().cloned());
            all.extend(positional);
            all.extend(options);
            all.extend(args.iter().skip(1).cloned());
            cmd.try_get_matches_from_mut(all)?
        }
        None => first,
    };
    if matches.get_flag(PRINT_CONFIG) {
        return Ok(Invocation::PrintConfig(effective_config(&cmd, &matches)));
    }
    Ok(Invocation::Run(Box::new(Cli::from_arg_matches(&matches)?)))
}

/// The tokens a config file stands for: the scenario (when the command line names none) and
/// `--option=value` for each option that the command line and environment leave unset.
fn config_tokens(
    cmd: &mut Command,
    path: &Path,
    given: &ArgMatches,
) -> Result<(Option<OsString>, Vec<OsString>), clap::Error> {
    let fail = |cmd: &mut Command, why: String| {
        cmd.error(
            ErrorKind::InvalidValue,
            format!("{}: {why}", path.display()),
        )
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Err(fail(cmd, format!("cannot read it: {e}"))),
    };
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Err(fail(cmd, format!("not TOML: {e}"))),
    };
    let mut entries = Vec::new();
    for (key, value) in table {
        match value {
            toml::Value::Table(group) => {
                for (key, value) in group {
                    if value.is_table() {
                        return Err(fail(cmd, format!("`{key}`: tables nest one level only")));
                    }
                    entries.push((key, value));
                }
            }
            value => entries.push((key, value)),
        }
    }
    let set_outside = |id: &str| {
        matches!(
            given.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut positional = None;
    let mut tokens = Vec::new();
    for (key, value) in entries {
        let long = key.replace('_', "-");
        if long == SCENARIO {
            let Some(name) = scalar(&value) else {
                return Err(fail(cmd, format!("`{key}` is a scenario name")));
            };
            if !set_outside(SCENARIO) {
                positional = Some(OsString::from(name));
            }
            continue;
        }
        let found = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !NOT_SETTINGS.contains(&long.as_str()))
            .map(|a| (a.get_id().to_string(), a.get_action().clone()));
        let Some((id, action)) = found else {
            return Err(fail(
                cmd,
                format!("`{key}` is not a `scenario` option (see --help)"),
            ));
        };
        if set_outside(&id) {
            continue;
        }
        let values = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Option<Vec<_>>>(),
            one => scalar(one).map(|v| vec![v]),
        };
        let Some(values) = values else {
            return Err(fail(cmd, format!("`{key}`: a value or an array of values")));
        };
        match action {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => tokens.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                _ => return Err(fail(cmd, format!("`{key}` is a flag: true or false"))),
            },
            ArgAction::Count => match value.as_integer() {
                Some(n) if (0..=255).contains(&n) => tokens.extend(std::iter::repeat_n(
                    OsString::from(format!("--{long}")),
                    n as usize,
                )),
                _ => return Err(fail(cmd, format!("`{key}` is a count (0 to 255)"))),
            },
            _ => tokens.extend(
                values
                    .iter()
                    .map(|v| OsString::from(format!("--{long}={v}"))),
            ),
        }
    }
    Ok((positional, tokens))
}

/// A TOML scalar as the text of a command-line value.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Datetime(d) => Some(d.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => None,
    }
}

/// The effective options as a config file: every option that has a value (given or
/// default), grouped by `--help` heading. Secrets (options whose environment values `--help`
/// hides) are left out; give them by environment.
pub fn effective_config(cmd: &Command, matches: &ArgMatches) -> String {
    let mut doc = toml::Table::new();
    if let Some(raw) = matches.get_raw(SCENARIO).and_then(|mut v| v.next()) {
        doc.insert(SCENARIO.into(), toml_value(raw));
    }
    for arg in cmd.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else {
            continue;
        };
        if NOT_SETTINGS.contains(&long) || arg.is_hide_env_values_set() {
            continue;
        }
        let value = match arg.get_action() {
            ArgAction::SetTrue => matches.get_flag(id).then_some(toml::Value::Boolean(true)),
            ArgAction::Count => {
                let n = matches.get_count(id);
                (n > 0).then(|| toml::Value::Integer(i64::from(n)))
            }
            ArgAction::Append => {
                let values: Vec<toml::Value> = matches
                    .get_raw(id)
                    .map(|vs| vs.map(toml_value).collect())
                    .unwrap_or_default();
                (!values.is_empty()).then_some(toml::Value::Array(values))
            }
            _ => matches
                .get_raw(id)
                .and_then(|mut vs| vs.next())
                .map(toml_value),
        };
        let Some(value) = value else {
            continue;
        };
        let heading = arg
            .get_help_heading()
            .unwrap_or("options")
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        doc.entry(heading)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .expect("a heading is a table")
            .insert(long.to_owned(), value);
    }
    format!(
        "# scenario --print-config: the effective options; `scenario --config FILE` runs the same.\n{}",
        toml::to_string(&doc).expect("a TOML table serializes")
    )
}

/// A raw command-line value as TOML: an integer or a number when it reads back as the same
/// text, else a string.
fn toml_value(raw: &std::ffi::OsStr) -> toml::Value {
    let s = raw.to_string_lossy();
    if let Ok(i) = s.parse::<i64>() {
        if i.to_string() == s {
            return toml::Value::Integer(i);
        }
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f.to_string() == s && s.contains('.') {
            return toml::Value::Float(f);
        }
    }
    toml::Value::String(s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(args: &[&str]) -> Cli {
        match parse_from(std::iter::once("scenario").chain(args.iter().copied())) {
            Ok(Invocation::Run(cli)) => *cli,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn printed(args: &[&str]) -> String {
        match parse_from(std::iter::once("scenario").chain(args.iter().copied())) {
            Ok(Invocation::PrintConfig(text)) => text,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    const LAB: &str = r#"
scenario = "coupon-rush"

[load]
users = 40
run-time = "20s"
seed = 7

[stack]
stack = "embedded"
strategy = "pessimistic"
db_max_connections = 8
no-history = true

[chaos]
max-recovery = "10s"
slo-error-rate = "2%"

[verdict]
p99 = ["all=1s", "claim=300ms"]
max-error-rate = 0.05
"#;

    #[test]
    fn a_config_file_sets_scenario_parameters_stack_options_and_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let lab = write(dir.path(), "lab.toml", LAB);
        let cli = run(&["--config", lab.to_str().unwrap()]);
        assert_eq!(cli.scenario, crate::ScenarioName::CouponRush);
        assert_eq!(cli.goose.users, Some(40));
        assert_eq!(cli.goose.run_time.as_deref(), Some("20s"));
        assert_eq!(cli.seed, 7);
        assert_eq!(cli.strategy, boxoffice::Strategy::Pessimistic);
        assert_eq!(cli.db_max_connections, Some(8));
        assert!(cli.no_history);
        assert_eq!(cli.max_recovery, Some(10_000.0));
        assert_eq!(cli.slo_error_rate, 0.02);
        assert_eq!(cli.p99.len(), 2);
        assert_eq!(cli.p99[1].transaction, "claim");
        assert_eq!(cli.max_error_rate, Some(0.05));
    }

    #[test]
    fn the_command_line_overrides_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let lab = write(dir.path(), "lab.toml", LAB);
        let cli = run(&[
            "flash-sale",
            "-u",
            "5",
            "--config",
            lab.to_str().unwrap(),
            "--strategy",
            "atomic",
            "--p99",
            "hold=200ms",
        ]);
        assert_eq!(cli.scenario, crate::ScenarioName::FlashSale);
        assert_eq!(cli.goose.users, Some(5));
        assert_eq!(cli.strategy, boxoffice::Strategy::Atomic);
        // A repeatable option given on the command line replaces the file's list.
        assert_eq!(cli.p99.len(), 1);
        assert_eq!(cli.p99[0].transaction, "hold");
        // What the command line leaves alone still comes from the file.
        assert_eq!(cli.seed, 7);
        assert_eq!(cli.goose.run_time.as_deref(), Some("20s"));
    }

    #[test]
    fn print_config_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let lab = write(dir.path(), "lab.toml", LAB);
        let args = [
            "--config",
            lab.to_str().unwrap(),
            "-t",
            "9s",
            "--rate",
            "12.5",
        ];
        let first = printed(&[&args[..], &["--print-config"][..]].concat());
        assert!(first.contains("[verdict]"), "{first}");
        assert!(first.contains("run-time = \"9s\""), "{first}");
        assert!(first.contains("rate = 12.5"), "{first}");
        assert!(
            !first.contains("admin-password"),
            "a secret was printed: {first}"
        );
        let again = write(dir.path(), "effective.toml", &first);
        let second = printed(&["--config", again.to_str().unwrap(), "--print-config"]);
        assert_eq!(first, second);
        // And the two give the same run.
        let a = run(&args);
        let b = run(&["--config", again.to_str().unwrap()]);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn print_config_without_a_file_writes_the_defaults() {
        let text = printed(&["--print-config"]);
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["scenario"].as_str(), Some("flash-sale"));
        assert_eq!(table["lab"]["stack"].as_str(), Some("embedded"));
        assert_eq!(table["lab"]["seed"].as_integer(), Some(42));
    }

    #[test]
    fn a_bad_config_file_is_a_usage_error_that_names_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        for (text, says) in [
            ("[load]\nuserz = 3\n", "`userz` is not a `scenario` option"),
            ("users = \"many\"\n", "invalid value 'many'"),
            ("no-history = 1\n", "is a flag"),
            ("[a]\n[a.b]\nc = 1\n", "nest one level only"),
            ("users = [1, [2]]\n", "a value or an array"),
            ("users = \n", "not TOML"),
            ("config = \"other.toml\"\n", "is not a `scenario` option"),
        ] {
            let lab = write(dir.path(), "bad.toml", text);
            let err = parse_from(["scenario", "--config", lab.to_str().unwrap()]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{text}");
            let msg = err.to_string();
            assert!(msg.contains(says), "{text}: {msg}");
        }
        let err = parse_from(["scenario", "--config", "/no/such/lab.toml"]).unwrap_err();
        assert!(err.to_string().contains("/no/such/lab.toml"), "{err}");
    }

    #[test]
    fn every_option_reads_a_scenario_environment_variable() {
        let cmd = command();
        let mut with = 0;
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_SETTINGS.contains(&long) && long != CONFIG {
                continue;
            }
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            if long.starts_with("admin-") {
                assert_eq!(
                    env,
                    format!("BOXOFFICE_{}", long.replace('-', "_").to_uppercase())
                );
            } else {
                assert_eq!(env, env_name(long), "--{long}");
                with += 1;
            }
        }
        assert!(with > 60, "only {with} options read the environment");
        command().debug_assert();
    }

    #[test]
    fn the_example_config_in_docs_parses_and_round_trips() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lab.example.toml");
        let path = example.to_str().unwrap();
        let cli = run(&["--config", path]);
        assert_eq!(cli.scenario, crate::ScenarioName::FlashSale);
        assert!(cli.chaos.is_some(), "the example shows a chaos schedule");
        assert!(!cli.p99.is_empty(), "the example shows thresholds");
        let first = printed(&["--config", path, "--print-config"]);
        let dir = tempfile::tempdir().unwrap();
        let again = write(dir.path(), "effective.toml", &first);
        assert_eq!(
            first,
            printed(&["--config", again.to_str().unwrap(), "--print-config"])
        );
        // The README shows the same file.
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
                .unwrap();
        let text = std::fs::read_to_string(&example).unwrap();
        assert!(
            readme.contains(text.trim()),
            "README.md's lab.toml differs from docs/lab.example.toml"
        );
    }
}
