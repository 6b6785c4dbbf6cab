//! Unit tests of grants, codes and tokens, in memory with paused time.
