//! One module per subcommand: argument struct plus `run`.
