//! One module per subcommand: argument struct plus `run`.

pub mod synth;
pub mod init;
pub mod inspect;
