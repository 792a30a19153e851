//! Standalone HTTP adapter (in progress).
