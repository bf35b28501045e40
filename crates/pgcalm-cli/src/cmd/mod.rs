//! One module per command: its flags (`Args`) and its `run` function.

pub(crate) mod down;
pub(crate) mod init;
pub(crate) mod inspect;
pub(crate) mod lab;
pub(crate) mod lint;
pub(crate) mod logs;
pub(crate) mod migrate;
pub(crate) mod monitor;
pub(crate) mod probe;
pub(crate) mod psql;
pub(crate) mod seed;
pub(crate) mod serve;
pub(crate) mod showmigrations;
pub(crate) mod sqlmigrate;
pub(crate) mod status;
pub(crate) mod trace;
pub(crate) mod up;
pub(crate) mod url;
