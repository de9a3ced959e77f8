//! The example CI workflows in docs/ci/ run commands this `scenario` accepts.

use std::path::Path;

#[test]
fn every_scenario_command_of_the_example_ci_workflows_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ci");
    let mut commands = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/ci exists") {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let Some((_, args)) = line.split_once("--bin scenario --") else {
                continue;
            };
            let argv = std::iter::once("scenario").chain(args.split_whitespace());
            if let Err(e) = scenarios::Cli::parse_from_args(argv) {
                panic!("{}: {line}\n{e}", path.display());
            }
            commands += 1;
        }
    }
    assert!(commands >= 2, "one command per example at least");
}
