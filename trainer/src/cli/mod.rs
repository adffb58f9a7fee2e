//! One module per subcommand: argument struct plus `run`.

pub mod bench;
pub mod common;
pub mod demo_data;
pub mod eval;
pub mod init;
pub mod inspect;
pub mod score;
pub mod serve;
pub mod synth;
pub mod tradeoff;
pub mod train;
pub mod verify;
