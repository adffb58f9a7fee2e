//! One module per subcommand: argument struct plus `run`.
pub mod synth;
pub mod demo_data;
pub mod serve;
