//! CGI adapter (in progress).
