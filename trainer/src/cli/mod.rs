//! One module per subcommand: argument struct plus `run`.

pub mod bench;
pub mod common;
pub mod eval;
pub mod train;
