//! One module per subcommand: argument struct plus `run`.
pub mod demo_data;
pub mod serve;
