//! Arguments of the admin subcommands (`pinlog topic|group|cluster`), which speak the Kafka protocol to any broker.
//! What they do lives in the binary (`src/admin/`); this module only says what can be typed.

/// Where and how an admin subcommand talks and prints. Global: `pinlog topic list --brokers h:p` and
/// `pinlog topic --brokers h:p list` both work.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminTarget {
    /// A broker to talk to (host:port).
    #[arg(
        long,
        global = true,
        env = "PINLOG_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Output: aligned columns for people, one JSON document for scripts.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Bound on connecting and on each request.
    #[arg(long, global = true, default_value_t = 10_000, value_name = "MS")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    #[command(flatten)]
    pub target: AdminTarget,
    #[command(subcommand)]
    pub command: TopicCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create {
        #[arg(required = true)]
        names: Vec<String>,
        /// Partitions per topic (-1: the broker's num.partitions).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas per partition (-1: the broker's default).
        #[arg(short, long, default_value_t = -1, allow_negative_numbers = true)]
        replicas: i16,
        /// A topic config, key=value (repeatable).
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition and replica counts.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(long)]
        all: bool,
    },
    /// Partitions (leader, epoch, offsets) and configs of a topic.
    Describe { name: String },
    /// Set or remove topic configs (IncrementalAlterConfigs).
    AlterConfig {
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Key to remove, back to the default (repeatable).
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to a total partition count.
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        num: i32,
    },
    /// Delete topics and their data.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub target: AdminTarget,
    #[command(subcommand)]
    pub command: GroupCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List,
    /// Members, assignments and per-partition lag of a group.
    Describe { name: String },
    /// Move a group's committed offsets (a dry run unless --execute); the group must have no members.
    ResetOffsets {
        name: String,
        #[arg(long)]
        topic: String,
        #[arg(long, conflicts_with_all = ["to_latest", "to_offset"])]
        to_earliest: bool,
        #[arg(long, conflicts_with = "to_offset")]
        to_latest: bool,
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// Commit the new offsets (otherwise only print the plan).
        #[arg(long)]
        execute: bool,
    },
    /// Delete groups and their committed offsets.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub target: AdminTarget,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info,
}
