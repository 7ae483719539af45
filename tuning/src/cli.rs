//! The `pinlog` command line.
//!
//! `pinlog` with no subcommand is `pinlog serve`: its flags are accepted at the top level too
//! (`pinlog --data-dir d`), and env vars apply either way. clap has no "default subcommand", so [`Cli`]
//! is parsed through a private derived struct and always comes out with `command = Some(..)`.
//! To add a subcommand (`bench`, `topic`), add a variant to [`Command`].

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::settings::Settings;

/// `pinlog tune`'s data dir when none is given; the embedded default config uses the same (tested).
pub const DATA_DIR_DEFAULT: &str = "./data";

/// Parsed command line. After `Cli::parse()`, `command` is always `Some`.
#[derive(Debug)]
pub struct Cli {
    pub command: Option<Command>,
}

/// Subcommands of `pinlog`.
// Parsed once per process: the size difference between variants costs nothing, boxing would cost clarity.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the broker (the default).
    Serve(ServeArgs),
    /// Print what this host offers pinlog and a recommended pinlog.toml.
    Tune(TuneArgs),
    /// Create, list, describe, alter and delete topics on any Kafka-compatible broker.
    Topic(crate::admin_args::TopicArgs),
    /// List, describe, reset and delete consumer groups.
    Group(crate::admin_args::GroupArgs),
    /// Cluster id, controller and brokers.
    Cluster(crate::admin_args::ClusterArgs),
}

impl Default for Command {
    /// `serve` with nothing set: the embedded default config.
    fn default() -> Self {
        Command::Serve(ServeArgs::default())
    }
}

/// `pinlog serve`: a config file plus one flag (and `PINLOG_*` env var) per config key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML config file layered over the embedded default (see tuning/pinlog.default.toml).
    #[arg(long, env = "PINLOG_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
}

/// `pinlog tune`.
#[derive(Debug, Clone, clap::Args)]
pub struct TuneArgs {
    /// Directory to check for O_DIRECT support and flush latency.
    #[arg(long, env = "PINLOG_DATA_DIR", value_name = "DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
}

/// What clap actually derives; [`Cli`] folds the top-level serve flags into `Command::Serve`.
#[derive(Debug, Parser)]
#[command(
    name = "pinlog",
    version,
    about = "Kafka-compatible thread-per-core streaming engine"
)]
#[command(args_conflicts_with_subcommands = true)]
struct RawCli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

impl From<RawCli> for Cli {
    fn from(raw: RawCli) -> Self {
        Cli {
            command: Some(raw.command.unwrap_or(Command::Serve(raw.serve))),
        }
    }
}

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        RawCli::command()
    }

    fn command_for_update() -> clap::Command {
        RawCli::command_for_update()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        RawCli::from_arg_matches(matches).map(Cli::from)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Cli::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;

    use super::*;
    use crate::core_spec::CoreSpec;
    use crate::test_support::disk_tempdir;

    /// Tests that parse the command line read the process environment; they take this lock so one test's
    /// `PINLOG_*` variables never leak into another's parse.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    fn lock_env() -> std::sync::MutexGuard<'static, ()> {
        ENV_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn parse(args: &[&str]) -> Command {
        let cli =
            Cli::try_parse_from(std::iter::once("pinlog").chain(args.iter().copied())).unwrap();
        cli.command.expect("Cli always carries a command")
    }

    fn serve(args: &[&str]) -> ServeArgs {
        match parse(args) {
            Command::Serve(serve) => serve,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    /// The ids of the per-key flags (everything of `serve` except `--config`).
    fn key_ids() -> Vec<String> {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        serve
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .filter(|id| !["config", "help"].contains(&id.as_str()))
            .collect()
    }

    #[test]
    fn no_arguments_is_serve_with_nothing_overridden() {
        let _env = lock_env();
        let args = serve(&[]);
        assert_eq!(args.config, None);
        assert_eq!(args.settings, Settings::default());
    }

    #[test]
    fn serve_flags_work_with_and_without_the_subcommand() {
        let _env = lock_env();
        for prefix in [&[][..], &["serve"][..]] {
            let mut argv = prefix.to_vec();
            argv.extend([
                "--config",
                "p.toml",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:1",
                "--advertise",
                "h:2",
                "--node-id",
                "3",
                "--shard-cores",
                "0,1",
                "--retention-bytes",
                "-1",
                "--auto-create-topics",
                "false",
                "--flush-policy",
                "interval",
            ]);
            let args = serve(&argv);
            assert_eq!(args.config.as_deref(), Some(Path::new("p.toml")));
            let s = args.settings;
            assert_eq!(s.data_dir.as_deref(), Some(Path::new("d")));
            assert_eq!(
                (s.listen.as_deref(), s.advertise.as_deref()),
                (Some("127.0.0.1:1"), Some("h:2"))
            );
            assert_eq!(s.node_id, Some(3));
            assert_eq!(s.shard_cores, Some(CoreSpec::List(vec![0, 1])));
            assert_eq!(s.retention_bytes, Some(-1));
            assert_eq!(s.auto_create_topics, Some(false));
            assert_eq!(s.flush_policy, Some(crate::FlushPolicyName::Interval));
        }
    }

    #[test]
    fn tune_takes_a_data_dir_defaulting_to_the_config_default() {
        let _env = lock_env();
        let Command::Tune(args) = parse(&["tune"]) else {
            panic!("expected tune")
        };
        assert_eq!(args.data_dir, Path::new(DATA_DIR_DEFAULT));
        let defaults = Settings::embedded_default().unwrap();
        assert_eq!(
            defaults.data_dir.as_deref(),
            Some(Path::new(DATA_DIR_DEFAULT))
        );
        let Command::Tune(args) = parse(&["tune", "--data-dir", "/x"]) else {
            panic!("expected tune")
        };
        assert_eq!(args.data_dir, Path::new("/x"));
    }

    #[test]
    fn every_key_has_its_flag_env_default_and_readme_row() {
        let command = Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let defaults: toml::Table = toml::from_str(crate::DEFAULT_CONFIG_TOML).unwrap();
        let readme = include_str!("../README.md");
        let ids = key_ids();
        assert_eq!(ids.len(), 30, "{ids:?}");
        for id in &ids {
            let arg = serve
                .get_arguments()
                .find(|arg| arg.get_id() == id.as_str())
                .unwrap();
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()));
            let env = format!("PINLOG_{}", id.to_uppercase());
            assert_eq!(
                arg.get_env().and_then(|env| env.to_str()),
                Some(env.as_str())
            );
            assert!(
                id == "advertise" || defaults.contains_key(id),
                "{id} missing from pinlog.default.toml"
            );
            assert!(
                readme.contains(&format!("| `{id}` |")),
                "{id} missing from README.md"
            );
        }
        assert!(defaults.keys().all(|key| ids.contains(key)));
    }

    #[test]
    fn bad_flag_values_are_rejected_by_clap() {
        let _env = lock_env();
        for argv in [
            &["pinlog", "--node-id", "x"][..],
            &["pinlog", "--shard-cores", "most"][..],
            &["pinlog", "--flush-policy", "sometimes"][..],
            &["pinlog", "--no-such-flag", "1"][..],
            &["pinlog", "--data-dir", "d", "serve"][..],
        ] {
            assert!(Cli::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }

    #[test]
    fn precedence_default_file_env_flag() {
        let _env = lock_env();
        let tmp = disk_tempdir();
        let dir = |name: &str| tmp.path().join(name).display().to_string();
        let file = tmp.path().join("pinlog.toml");
        let file_text = format!(
            "node_id = 1\nsegment_ms = 111\ndata_dir = {:?}\nlisten = \"127.0.0.1:9192\"\n",
            dir("from-file")
        );
        std::fs::write(&file, file_text).unwrap();
        std::env::set_var("PINLOG_NODE_ID", "2");
        std::env::set_var("PINLOG_DATA_DIR", dir("from-env"));
        std::env::set_var("PINLOG_DEFAULT_PARTITIONS", "5");
        let parsed = Cli::try_parse_from([
            "pinlog",
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            &dir("from-flag"),
            "--default-partitions",
            "6",
        ]);
        std::env::remove_var("PINLOG_NODE_ID");
        std::env::remove_var("PINLOG_DATA_DIR");
        std::env::remove_var("PINLOG_DEFAULT_PARTITIONS");
        let Some(Command::Serve(args)) = parsed.unwrap().command else {
            panic!("expected serve")
        };
        let config = crate::load(&args).unwrap();
        assert_eq!(
            config.retention_ms, 604_800_000,
            "embedded default where nothing overrides"
        );
        assert_eq!(config.segment_ms, 111, "file over default");
        assert_eq!(
            config.listen,
            "127.0.0.1:9192".parse().unwrap(),
            "file over default"
        );
        assert_eq!(config.advertise_port, 9192, "advertise follows listen");
        assert_eq!(config.node_id, 2, "env over file");
        assert_eq!(
            config.data_dir,
            tmp.path().join("from-flag").canonicalize().unwrap(),
            "flag over env over file"
        );
        assert_eq!(config.default_partitions, 6, "flag over env");
        assert!(
            tmp.path().join("from-flag").is_dir(),
            "load creates the data dir"
        );
    }

    #[test]
    fn env_applies_without_a_subcommand() {
        let _env = lock_env();
        std::env::set_var("PINLOG_SHARD_CORES", "[1]");
        let parsed = Cli::try_parse_from(["pinlog"]);
        std::env::remove_var("PINLOG_SHARD_CORES");
        let Some(Command::Serve(args)) = parsed.unwrap().command else {
            panic!("expected serve")
        };
        assert_eq!(args.settings.shard_cores, Some(CoreSpec::List(vec![1])));
    }

    #[test]
    fn load_reports_file_and_host_errors_in_one_line() {
        let _env = lock_env();
        let tmp = disk_tempdir();
        let file = tmp.path().join("pinlog.toml");
        std::fs::write(&file, "node_id = 1\nshard_core = 2\n").unwrap();
        let args = ServeArgs {
            config: Some(file.clone()),
            ..ServeArgs::default()
        };
        let err = crate::load(&args).unwrap_err().to_string();
        let expected = format!(
            "invalid config: shard_core = 2 ({} line 2): unknown field `shard_core`",
            file.display()
        );
        assert!(err.starts_with(&expected), "{err}");

        let data_dir = Some(tmp.path().join("data"));
        let shard_cores = Some(CoreSpec::List(vec![4096]));
        let args = ServeArgs {
            config: None,
            settings: Settings {
                data_dir,
                shard_cores,
                ..Settings::default()
            },
        };
        let err = crate::load(&args).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "invalid config: shard_cores = [4096]: core 4096 does not exist (host has cores "
            ),
            "{err}"
        );
    }
}
