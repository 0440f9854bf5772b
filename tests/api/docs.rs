//! The README's configuration table lists every setting `--help` shows.

use clap::CommandFactory;
use tenant_jwt::cli::Cli;

#[test]
fn readme_configuration_table_matches_the_cli() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let command = Cli::command();
    let settings: Vec<_> = command
        .get_arguments()
        .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?.to_owned())))
        .collect();
    assert!(settings.len() >= 15, "found {} settings", settings.len());
    for (flag, env) in settings {
        let row = format!("| `--{flag}` | `{env}` |");
        assert!(
            readme.contains(&row),
            "README.md has no configuration row starting {row}"
        );
    }
}
