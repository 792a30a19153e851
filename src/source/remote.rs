//! Remote sources (in progress).
