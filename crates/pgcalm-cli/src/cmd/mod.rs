//! One module per command: its flags (`Args`) and its `run` function.

pub mod down;
pub mod inspect;
pub mod lab;
pub mod lint;
pub mod logs;
pub mod migrate;
pub mod monitor;
pub mod probe;
pub mod psql;
pub mod seed;
pub mod serve;
pub mod showmigrations;
pub mod sqlmigrate;
pub mod status;
pub mod trace;
pub mod up;
pub mod url;
