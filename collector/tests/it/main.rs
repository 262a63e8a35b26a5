//! Integration tests of `footfall-collector` against real ClickHouse processes (Debian's
//! 18.16, started by the tests) and ClickHouse 26.x in-process (chdb).

mod counting;
mod faults;
mod import;
mod ingest;
mod schema;
mod util;
