//! FastCGI 1.0 responder (in progress).
