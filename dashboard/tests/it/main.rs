//! The dashboard as its users meet it: the binary serving real ClickHouse's tables over
//! HTTP, signed in with a user from its users file.

mod browser;
mod cluster;
mod compare;
mod modern;
mod sensors;
mod store;
mod stores;
mod util;
