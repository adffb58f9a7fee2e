//! One module per subcommand: argument struct plus `run`.

pub mod synth;
pub mod init;
pub mod inspect;
pub mod bench;
pub mod common;
pub mod eval;
pub mod tradeoff;
pub mod train;
pub mod demo_data;
pub mod serve;
pub mod score;
pub mod verify;
