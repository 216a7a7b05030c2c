//! Code resolution: fetch a payload, verify its digest, extract it safely, cache it.
//!
//! A step's code is a code artifact; every machine that runs the step turns the artifact into a
//! folder with [`CodeCache::resolve`]. The cache lives under `<root>/code/` (root from
//! [`CodeCache::default_root`]):
//!
//! ```text
//! <root>/code/<sha256 hex>/tree/                       an archive's extracted tree
//! <root>/code/<sha256 hex>-<file name>/tree/<file name> a single-file payload (or an inline body)
//! <root>/code/<entry>/manifest.json                      what the tree held when it was published
//! <root>/code/.download-*, .stage-*, .inline-*, .evict-* work in progress, never read as entries
//! ```
//!
//! Why this shape:
//! - **Keyed by the payload's sha256**, the digest the artifact records: equal bytes share one
//!   entry whatever artifact or tag names them, and an entry can never hold stale code for a
//!   digest. A single file's entry also carries its file name, because the module a handler
//!   imports is named after the file, and two artifacts may hold the same bytes under two names.
//! - **Checked before download**: with a recorded digest the entry name is known up front, so a
//!   warm resolve neither downloads nor extracts; a payload is fetched and unpacked once per
//!   machine.
//! - **Published by atomic rename**: payloads are downloaded and unpacked into temporary names in
//!   the same folder, verified, then renamed into place in one step. A reader sees a whole entry
//!   or none, a failed download, digest check or extraction leaves nothing behind, and when
//!   several processes resolve the same digest at once the first rename wins and the others
//!   discard their copy and use it.
//! - **Checked on every hit**: a manifest of each file's size, modification time and
//!   mode is published with the tree; a hit whose files differ (edited by hand, or by a handler
//!   writing into its own code) is evicted and fetched again, so a run never records a digest
//!   for code that no longer has it.
//! - **git sources by commit**: a git source's entry is `<root>/code/git-<commit>/`, the commit
//!   its ref names at resolve time, so a moved branch is fetched again and a pinned commit never
//!   changes; its tree is exported by git as a tar archive and goes through the same extractor.
//! - **Retried downloads leave nothing**: a download that fails on the way (a dropped connection,
//!   a body shorter than announced) is retried into a new temporary file, and the failed one is
//!   deleted at once.
//! - **One extractor** ([`extract()`]) for every archive, refusing anything that could escape the
//!   entry folder.

mod cache;
pub mod extract;
mod git;
mod manifest;
mod materialize;

pub use cache::{CodeCache, ResolvedCode, CACHE_DIR_ENV, MAX_FILE_NAME_LEN};
pub use extract::{detect, extract, ArchiveFormat, ExtractLimits, ExtractStats};
pub use materialize::copy_tree;
