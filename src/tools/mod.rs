//! What the command-line tools share beyond the servers: flag parsing and exit statuses
//! (`cli`) and `imgserv-admin`'s commands (`admin`; permissions in `grants`). The programs themselves are thin glue in
//! `bin/`.

pub mod admin;
pub mod cli;
pub mod grants;
