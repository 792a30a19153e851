//! Local sources (in progress).
