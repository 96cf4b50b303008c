//! Integration tests of bevy_foresight.

mod worker;
