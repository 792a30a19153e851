//! What the command-line tools share beyond the servers: flag parsing and exit statuses
//! (`cli`) and `imgserv-admin`'s commands (`admin`). The programs themselves are thin glue in
//! `bin/`.

pub mod admin;
pub mod cli;
