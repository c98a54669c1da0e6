//! A twin of the broxiva platform from real parts on loopback (see
//! docs/twin.md): the shipped config runs against it unchanged, through
//! `--connect-to` and `--map-path` only.

pub mod cluster;
