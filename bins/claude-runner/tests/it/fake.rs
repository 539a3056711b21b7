//! The process plumbing, against `fake-claude` playing scripts.
