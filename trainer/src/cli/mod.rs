//! One module per subcommand: argument struct plus `run`.

pub mod init;
pub mod inspect;
