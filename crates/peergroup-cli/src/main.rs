//! `peergroup`: the command line of Peergroup.

mod chat;
mod config_cmd;
mod context;
mod data_cmd;
mod demo;
mod group_cmd;
mod identity_cmd;
mod members_cmd;
mod output;
mod progress;
mod record_cmd;
mod status_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use peergroup_core::identity::IdentityStore;

use crate::output::CliError;

/// Peer groups with no server: identities, groups, records, events — on QUIC.
#[derive(Parser)]
#[command(name = "peergroup", version, about)]
struct Cli {
    /// Data directory (default: $PEERGROUP_HOME, else $XDG_DATA_HOME/peergroup).
    #[arg(long, global = true, env = "PEERGROUP_HOME")]
    home: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// More log output (-v info, -vv debug); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    who: context::As,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage identities: create, list, show, rename, export, import, delete.
    #[command(subcommand)]
    Identity(identity_cmd::IdentityCommand),
    /// Manage groups: create, list, show, set, delete, export-config, import-config.
    #[command(subcommand)]
    Group(group_cmd::GroupCommand),
    /// Invite an identity (or anyone with the password) into a group.
    Invite(group_cmd::InviteArgs),
    /// Join a group with an invitation.
    Join(group_cmd::JoinArgs),
    /// Bring a group online and report its status as it changes.
    Connect(group_cmd::ConnectArgs),
    /// List a group's members as this member knows them (the local one first).
    Members(members_cmd::MembersArgs),
    /// Add, read, search, update and delete a group's records.
    #[command(subcommand)]
    Record(record_cmd::RecordCommand),
    /// Export or import a group's record database (offline).
    #[command(subcommand)]
    Db(record_cmd::DbCommand),
    /// Bring a group online and print its events as they happen.
    Watch(record_cmd::WatchArgs),
    /// Report a group's status: status bits, neighbours, listen addresses, record count.
    Status(status_cmd::StatusArgs),
    /// Send a file to a member on a direct connection.
    Send(data_cmd::SendArgs),
    /// Bring a group online and receive what members send (direct connections).
    Listen(data_cmd::ListenArgs),
    /// Chat with the group's members: each line is a record, shown as it arrives.
    Chat(chat::ChatArgs),
    /// Walk through what Peergroup does, in a temporary home, and exit.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Demo => demo::run(),
        command => {
            let store = match cli.home {
                Some(h) => IdentityStore::open(h),
                None => IdentityStore::from_env(),
            }?;
            tracing::debug!(home = %store.home().display(), "home opened");
            match command {
                Command::Identity(cmd) => identity_cmd::run(&store, cmd, cli.json),
                Command::Group(cmd) => group_cmd::run(&store, &cli.who, cmd, cli.json),
                Command::Invite(args) => group_cmd::invite(&store, &cli.who, args, cli.json),
                Command::Join(args) => group_cmd::join(&store, &cli.who, args, cli.json),
                Command::Connect(args) => group_cmd::connect(&store, &cli.who, args, cli.json),
                Command::Members(args) => members_cmd::members(&store, &cli.who, args, cli.json),
                Command::Record(cmd) => record_cmd::run(&store, &cli.who, cmd, cli.json),
                Command::Db(cmd) => record_cmd::db(&store, &cli.who, cmd, cli.json),
                Command::Watch(args) => record_cmd::watch(&store, &cli.who, args, cli.json),
                Command::Status(args) => status_cmd::status(&store, &cli.who, args, cli.json),
                Command::Send(args) => data_cmd::send(&store, &cli.who, args, cli.json),
                Command::Listen(args) => data_cmd::listen(&store, &cli.who, args, cli.json),
                Command::Chat(args) => chat::chat(&store, &cli.who, args),
                Command::Demo => unreachable!("handled above"),
            }
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
