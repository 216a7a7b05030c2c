//! The one safe archive extractor.
//!
//! Everything in baton that unpacks a payload goes through [`extract`]. Archives are untrusted
//! input: a code artifact may have been logged by anyone with write access to the project, and it
//! is unpacked on every machine that runs it. So the extractor refuses, with an error naming the
//! member, anything that could write or point outside the target folder or plant something other
//! than plain files, folders and contained symlinks:
//!
//! - absolute paths (`/etc/passwd`, `C:\evil`) and any `..` component;
//! - symlinks whose target is absolute or, resolved lexically from the link's folder, leaves the
//!   root; after the last member every symlink is resolved again through the links the archive
//!   created, so a chain such as `d/up -> ..` plus `t -> d/up/..` is refused too;
//! - every hard link, device, FIFO and socket;
//! - any member whose path passes through (or lands on) a symlink, even one pointing inside: the
//!   extractor never writes through a link;
//! - more than [`ExtractLimits::max_entries`] members, more than
//!   [`ExtractLimits::max_total_bytes`] written, or more than [`ExtractLimits::max_ratio`] times
//!   the archive's size written. The limits count bytes as they are written, never the sizes
//!   headers claim.
//!
//! setuid, setgid and sticky bits and group/other write bits are dropped (files keep
//! `mode & 0o755`, always owner-readable; folders are `0o755`).
//!
//! The format is detected from content ([`detect`]), never from a file name, because a name is
//! whatever the user typed when logging the code.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, IoResultExt, Result};

/// Caps that stop an archive from exhausting the disk or hiding a decompression bomb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// The most members (files, folders, links, metadata headers) an archive may hold.
    pub max_entries: u64,
    /// The most bytes extraction may write in total.
    pub max_total_bytes: u64,
    /// The most bytes extraction may write per byte of archive.
    pub max_ratio: u64,
}

impl Default for ExtractLimits {
    /// 10,000 entries, 1 GiB, ratio 100: generous for source code, small enough to stop a bomb.
    fn default() -> Self {
        ExtractLimits {
            max_entries: 10_000,
            max_total_bytes: 1 << 30,
            max_ratio: 100,
        }
    }
}

/// An archive format baton can extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A zip archive (stored or deflated members).
    Zip,
    /// An uncompressed (ustar or GNU) tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    TarGz,
}

impl ArchiveFormat {
    /// The short lowercase name of the format.
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveFormat::Zip => "zip",
            ArchiveFormat::Tar => "tar",
            ArchiveFormat::TarGz => "tar.gz",
        }
    }
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Archive members read, including metadata-only members.
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Folders created from folder members.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

const TAR_MAGIC_OFFSET: usize = 257;
const TAR_MAGIC: &[u8] = b"ustar";
const ZIP_LOCAL_HEADER: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_ARCHIVE: &[u8] = b"PK\x05\x06";
const GZIP_MAGIC: &[u8] = b"\x1f\x8b";

/// The archive format of the file at `path`, judged by its content, or `None` for a plain file.
///
/// A zip starts with a local file header or is an empty archive's end record; a tar has `ustar`
/// at offset 257 of its first header; a tar.gz is gzip data whose decompressed first block is such
/// a header. Anything else, including gzip data that is not a tar, is a plain file.
pub fn detect(path: &Path) -> Result<Option<ArchiveFormat>> {
    let file = File::open(path).io_context(|| format!("Failed to open `{}`", path.display()))?;
    let mut head = Vec::with_capacity(512);
    file.take(512)
        .read_to_end(&mut head)
        .io_context(|| format!("Failed to read `{}`", path.display()))?;
    if head.starts_with(ZIP_LOCAL_HEADER) || head.starts_with(ZIP_EMPTY_ARCHIVE) {
        return Ok(Some(ArchiveFormat::Zip));
    }
    if has_tar_magic(&head) {
        return Ok(Some(ArchiveFormat::Tar));
    }
    if head.starts_with(GZIP_MAGIC) {
        let file =
            File::open(path).io_context(|| format!("Failed to open `{}`", path.display()))?;
        let mut block = Vec::with_capacity(512);
        // A read error here means "not gzip after all": the payload is then a plain file.
        let ok = MultiGzDecoder::new(BufReader::new(file))
            .take(512)
            .read_to_end(&mut block)
            .is_ok();
        if ok && has_tar_magic(&block) {
            return Ok(Some(ArchiveFormat::TarGz));
        }
    }
    Ok(None)
}

fn has_tar_magic(block: &[u8]) -> bool {
    block.get(TAR_MAGIC_OFFSET..TAR_MAGIC_OFFSET + TAR_MAGIC.len()) == Some(TAR_MAGIC)
}

/// Extracts `archive` (of the given `format`) into `dest`, creating `dest` if needed.
///
/// Every refusal is an [`Error::InvalidArgument`] naming the member and the rule it broke. On
/// error `dest` may hold part of the tree: extract into a fresh folder and discard it on failure,
/// as [`super::CodeCache`] does.
pub fn extract(
    archive: &Path,
    format: ArchiveFormat,
    dest: &Path,
    limits: &ExtractLimits,
) -> Result<ExtractStats> {
    let payload_size = fs::metadata(archive)
        .io_context(|| format!("Failed to read `{}`", archive.display()))?
        .len();
    fs::create_dir_all(dest).io_context(|| format!("Failed to create `{}`", dest.display()))?;
    let file =
        File::open(archive).io_context(|| format!("Failed to open `{}`", archive.display()))?;
    let mut x = Extractor::new(archive, dest, *limits, payload_size);
    match format {
        ArchiveFormat::Zip => extract_zip(&mut x, file)?,
        ArchiveFormat::Tar => {
            let guarded = x.guard(BufReader::new(file));
            extract_tar(&mut x, guarded)?
        }
        ArchiveFormat::TarGz => {
            let guarded = x.guard(MultiGzDecoder::new(BufReader::new(file)));
            extract_tar(&mut x, guarded)?
        }
    }
    x.finish()
}

fn extract_zip(x: &mut Extractor, file: File) -> Result<()> {
    const S_IFMT: u32 = 0o170_000;
    const S_IFREG: u32 = 0o100_000;
    const S_IFDIR: u32 = 0o040_000;
    const S_IFLNK: u32 = 0o120_000;
    const S_IFCHR: u32 = 0o020_000;
    const S_IFBLK: u32 = 0o060_000;
    const S_IFIFO: u32 = 0o010_000;

    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        Error::invalid_from(
            format!("`{}` is not a readable zip archive", x.archive.display()),
            e,
        )
    })?;
    for index in 0..zip.len() {
        let member = zip.name_for_index(index).unwrap_or("?").to_string();
        let mut entry = zip
            .by_index(index)
            .map_err(|e| refuse(&member, format!("it cannot be read: {e}")))?;
        let name = entry.name().to_string();
        x.count(&name)?;
        let mode = entry.unix_mode();
        let kind = mode.map_or(0, |m| m & S_IFMT);
        match kind {
            S_IFLNK => {
                let mut target = Vec::new();
                (&mut entry)
                    .take(4096)
                    .read_to_end(&mut target)
                    .map_err(|e| x.read_error(&name, e))?;
                let target = String::from_utf8(target)
                    .map_err(|_| refuse(&name, "its symlink target is not valid UTF-8"))?;
                x.symlink(&name, &target)?;
            }
            S_IFDIR => x.dir(&name)?,
            0 | S_IFREG if entry.is_dir() => x.dir(&name)?,
            0 | S_IFREG => x.file(&name, mode.unwrap_or(0o644), &mut entry)?,
            S_IFCHR => return Err(refuse(&name, "it is a character device")),
            S_IFBLK => return Err(refuse(&name, "it is a block device")),
            S_IFIFO => return Err(refuse(&name, "it is a FIFO")),
            other => {
                return Err(refuse(
                    &name,
                    format!("it has unsupported file type bits `{other:o}`"),
                ))
            }
        }
    }
    Ok(())
}

fn extract_tar<R: Read>(x: &mut Extractor, reader: R) -> Result<()> {
    use tar::EntryType;

    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|e| x.read_error("<first>", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| x.read_error("<next>", e))?;
        let name = String::from_utf8(entry.path_bytes().into_owned()).map_err(|e| {
            refuse(
                &String::from_utf8_lossy(e.as_bytes()),
                "its path is not valid UTF-8",
            )
        })?;
        x.count(&name)?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644);
        match kind {
            // git archive writes a pax global header carrying the commit id: metadata only.
            EntryType::XGlobalHeader => {}
            EntryType::Regular | EntryType::Continuous if name.ends_with('/') => x.dir(&name)?,
            EntryType::Regular | EntryType::Continuous => x.file(&name, mode, &mut entry)?,
            EntryType::Directory => x.dir(&name)?,
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse(&name, "it is a symlink without a target"))?;
                let target = String::from_utf8(target.into_owned())
                    .map_err(|_| refuse(&name, "its symlink target is not valid UTF-8"))?;
                x.symlink(&name, &target)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                return Err(refuse(
                    &name,
                    format!(
                        "it is a hard link (to `{}`); hard links are never extracted",
                        target.escape_debug()
                    ),
                ));
            }
            EntryType::Char => return Err(refuse(&name, "it is a character device")),
            EntryType::Block => return Err(refuse(&name, "it is a block device")),
            EntryType::Fifo => return Err(refuse(&name, "it is a FIFO")),
            EntryType::GNUSparse => return Err(refuse(&name, "sparse files are not supported")),
            other => {
                return Err(refuse(
                    &name,
                    format!(
                        "its tar entry type `{}` is not supported",
                        (other.as_byte() as char).escape_debug()
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// The refusal every broken rule reports.
fn refuse(name: &str, why: impl fmt::Display) -> Error {
    Error::invalid(format!(
        "Refusing to extract archive member `{}`: {why}",
        name.escape_debug()
    ))
}

/// A limit crossed while reading the decompressed tar stream; travels inside an `io::Error`.
#[derive(Debug)]
struct StreamLimit(String);

impl fmt::Display for StreamLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StreamLimit {}

/// Caps the decompressed tar stream, so header-only data (GNU long names, pax records, which the
/// tar crate buffers in memory) cannot grow without bound either.
struct Guarded<R> {
    inner: R,
    read: u64,
    cap: u64,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::other(StreamLimit(format!(
                "the tar stream is larger than {} bytes, more than the extraction limits allow",
                self.cap
            ))));
        }
        Ok(n)
    }
}

/// The limit message carried by `e` or by one of its causes.
fn stream_limit(e: &io::Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> =
        e.get_ref().map(|r| r as &(dyn std::error::Error + 'static));
    while let Some(err) = cur {
        if let Some(limit) = err.downcast_ref::<StreamLimit>() {
            return Some(limit.0.clone());
        }
        if let Some(inner) = err.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
            cur = Some(inner);
            continue;
        }
        cur = err.source();
    }
    None
}

/// The state of one extraction: where it writes, what it has written, which links it created.
struct Extractor<'a> {
    archive: &'a Path,
    root: &'a Path,
    limits: ExtractLimits,
    payload_size: u64,
    stats: ExtractStats,
    /// Every symlink created, by path relative to the root, with its target and member name.
    links: BTreeMap<PathBuf, (String, String)>,
    buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    fn new(archive: &'a Path, root: &'a Path, limits: ExtractLimits, payload_size: u64) -> Self {
        Extractor {
            archive,
            root,
            limits,
            payload_size,
            stats: ExtractStats::default(),
            links: BTreeMap::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    fn guard<R: Read>(&self, inner: R) -> Guarded<R> {
        // Room for headers, padding and long names on top of what the content may weigh.
        let overhead = self
            .limits
            .max_entries
            .saturating_mul(4096)
            .saturating_add(1 << 20);
        let content = self
            .limits
            .max_total_bytes
            .min(self.limits.max_ratio.saturating_mul(self.payload_size));
        Guarded {
            inner,
            read: 0,
            cap: content.saturating_add(overhead),
        }
    }

    fn read_error(&self, name: &str, e: io::Error) -> Error {
        match stream_limit(&e) {
            Some(limit) => Error::invalid(format!(
                "Refusing to extract archive `{}`: {limit}",
                self.archive.display()
            )),
            None => Error::invalid_from(
                format!(
                    "Failed to read member `{}` of archive `{}`",
                    name.escape_debug(),
                    self.archive.display()
                ),
                e,
            ),
        }
    }

    fn count(&mut self, name: &str) -> Result<()> {
        self.stats.entries += 1;
        if self.stats.entries > self.limits.max_entries {
            return Err(refuse(
                name,
                format!(
                    "the archive has more than {max} entries (max_entries = {max})",
                    max = self.limits.max_entries
                ),
            ));
        }
        Ok(())
    }

    /// Creates the parents of `rel` one by one, refusing to pass through a symlink, and returns
    /// the full path of `rel` after checking what already sits there.
    fn prepare(&self, name: &str, rel: &Path) -> Result<(PathBuf, Option<fs::Metadata>)> {
        let mut dir = self.root.to_path_buf();
        let mut prefix = PathBuf::new();
        let parents: Vec<_> = rel
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .collect();
        for comp in parents {
            dir.push(comp);
            prefix.push(comp);
            match fs::symlink_metadata(&dir) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(refuse(
                        name,
                        format!(
                            "its path passes through the symlink `{}` created by this archive",
                            prefix.display()
                        ),
                    ))
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(refuse(
                        name,
                        format!(
                            "its folder `{}` is a file in this archive",
                            prefix.display()
                        ),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    make_dir(&dir)?;
                }
                Err(e) => {
                    return Err(Error::io(
                        format!("Failed to inspect `{}`", dir.display()),
                        e,
                    ))
                }
            }
        }
        let path = self.root.join(rel);
        let existing = match fs::symlink_metadata(&path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::io(
                    format!("Failed to inspect `{}`", path.display()),
                    e,
                ))
            }
        };
        if existing
            .as_ref()
            .is_some_and(|m| m.file_type().is_symlink())
        {
            return Err(refuse(
                name,
                format!(
                    "it would be written through the symlink `{}` created by this archive",
                    rel.display()
                ),
            ));
        }
        Ok((path, existing))
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        let Some(rel) = member_path(name)? else {
            return Ok(()); // `./`: the root itself
        };
        let (path, existing) = self.prepare(name, &rel)?;
        match existing {
            Some(meta) if meta.is_dir() => {}
            Some(_) => {
                return Err(refuse(
                    name,
                    "it is a folder where this archive already wrote a file",
                ))
            }
            None => make_dir(&path)?,
        }
        self.stats.dirs += 1;
        Ok(())
    }

    fn file(&mut self, name: &str, mode: u32, data: &mut dyn Read) -> Result<()> {
        let rel = member_path(name)?.ok_or_else(|| refuse(name, "its path is empty"))?;
        let (path, existing) = self.prepare(name, &rel)?;
        match existing {
            Some(meta) if meta.is_dir() => {
                return Err(refuse(
                    name,
                    "it is a file where this archive already made a folder",
                ))
            }
            // A later member of the same name replaces the earlier one, as tar does.
            Some(_) => fs::remove_file(&path)
                .io_context(|| format!("Failed to replace `{}`", path.display()))?,
            None => {}
        }
        let mut out = create_new(&path)?;
        let ratio_cap = self.limits.max_ratio.saturating_mul(self.payload_size);
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_error(name, e)),
            };
            let total = self.stats.bytes + n as u64;
            if total > self.limits.max_total_bytes {
                return Err(refuse(
                    name,
                    format!(
                        "the archive unpacks to more than {max} bytes (max_total_bytes = {max})",
                        max = self.limits.max_total_bytes
                    ),
                ));
            }
            if total > ratio_cap {
                return Err(refuse(
                    name,
                    format!(
                        "the archive unpacks to more than {ratio} times its size of {size} bytes \
                         (max_ratio = {ratio}); it looks like a decompression bomb",
                        ratio = self.limits.max_ratio,
                        size = self.payload_size
                    ),
                ));
            }
            out.write_all(&self.buf[..n])
                .io_context(|| format!("Failed to write `{}`", path.display()))?;
            self.stats.bytes = total;
        }
        set_file_mode(&out, &path, mode)?;
        self.stats.files += 1;
        Ok(())
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let rel = member_path(name)?.ok_or_else(|| refuse(name, "its path is empty"))?;
        let escapes = || {
            refuse(
                name,
                format!(
                    "it is a symlink to `{}`, which leaves the target folder",
                    target.escape_debug()
                ),
            )
        };
        if target.is_empty() {
            return Err(refuse(name, "it is a symlink with an empty target"));
        }
        if is_absolute(target) {
            return Err(refuse(
                name,
                format!(
                    "it is a symlink to the absolute path `{}`",
                    target.escape_debug()
                ),
            ));
        }
        let base: Vec<String> = parent_components(&rel);
        resolve_lexically(base, target).ok_or_else(escapes)?;
        let (path, existing) = self.prepare(name, &rel)?;
        match existing {
            Some(meta) if meta.is_dir() => {
                return Err(refuse(
                    name,
                    "it is a symlink where this archive already made a folder",
                ))
            }
            Some(_) => fs::remove_file(&path)
                .io_context(|| format!("Failed to replace `{}`", path.display()))?,
            None => {}
        }
        make_symlink(target, &path, name)?;
        self.links
            .insert(rel, (target.to_string(), name.to_string()));
        self.stats.symlinks += 1;
        Ok(())
    }

    /// Resolves every link through the links of the finished tree: a link may stay inside
    /// lexically and still leave the root by walking `..` out of another link.
    fn finish(self) -> Result<ExtractStats> {
        let root = fs::canonicalize(self.root)
            .io_context(|| format!("Failed to resolve `{}`", self.root.display()))?;
        for (rel, (target, name)) in &self.links {
            // The kernel's answer for links that resolve (it sees case-insensitive names too);
            // a dangling link is judged by the archive's own links below.
            if let Ok(real) = fs::canonicalize(self.root.join(rel)) {
                if !real.starts_with(&root) {
                    return Err(refuse(
                        name,
                        format!(
                            "it is a symlink to `{}`, which resolves outside the target folder",
                            target.escape_debug()
                        ),
                    ));
                }
            }
            match resolve_through_links(&self.links, parent_components(rel), target) {
                Resolution::Inside => {}
                Resolution::Escapes => {
                    return Err(refuse(
                        name,
                        format!(
                            "it is a symlink to `{}`, which leaves the target folder through \
                             another symlink of this archive",
                            target.escape_debug()
                        ),
                    ))
                }
                Resolution::Loops => {
                    return Err(refuse(
                        name,
                        format!(
                            "it is a symlink to `{}`, which loops through other symlinks",
                            target.escape_debug()
                        ),
                    ))
                }
            }
        }
        Ok(self.stats)
    }
}

/// The member path `name` as a relative path of plain components (`.` and empty ones dropped),
/// `None` for the root itself, or a refusal for absolute paths and `..`.
fn member_path(name: &str) -> Result<Option<PathBuf>> {
    if name.contains('\0') {
        return Err(refuse(name, "its path contains a NUL byte"));
    }
    if is_absolute(name) {
        return Err(refuse(name, "its path is absolute"));
    }
    let mut out = PathBuf::new();
    for comp in name.split(['/', '\\']) {
        match comp {
            "" | "." => {}
            ".." => return Err(refuse(name, "its path leaves the target folder")),
            c => out.push(c),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Whether `p` is absolute on any platform an archive may come from: `/x`, `\x`, `C:\x`, `C:x`.
fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with(['/', '\\']) || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

fn parent_components(rel: &Path) -> Vec<String> {
    rel.parent()
        .into_iter()
        .flat_map(Path::components)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect()
}

/// `target` resolved from the folder `base` without following links, or `None` if it leaves.
fn resolve_lexically(mut base: Vec<String>, target: &str) -> Option<Vec<String>> {
    for comp in target.split(['/', '\\']) {
        match comp {
            "" | "." => {}
            ".." => {
                base.pop()?;
            }
            c => base.push(c.to_string()),
        }
    }
    Some(base)
}

enum Resolution {
    Inside,
    Escapes,
    Loops,
}

/// Resolves `target` from the folder `base` as the kernel would, following the archive's links
/// wherever a prefix names one.
fn resolve_through_links(
    links: &BTreeMap<PathBuf, (String, String)>,
    mut stack: Vec<String>,
    target: &str,
) -> Resolution {
    const MAX_HOPS: u32 = 40;
    let mut pending: Vec<String> = target
        .split(['/', '\\'])
        .rev()
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "" | "." => {}
            ".." => {
                if stack.pop().is_none() {
                    return Resolution::Escapes;
                }
            }
            c => {
                stack.push(c.to_string());
                let here: PathBuf = stack.iter().collect();
                if let Some((next, _)) = links.get(&here) {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Resolution::Loops;
                    }
                    if is_absolute(next) {
                        return Resolution::Escapes;
                    }
                    stack.pop();
                    pending.extend(next.split(['/', '\\']).rev().map(str::to_string));
                }
            }
        }
    }
    Resolution::Inside
}

fn make_dir(path: &Path) -> Result<()> {
    fs::create_dir(path).io_context(|| format!("Failed to create `{}`", path.display()))?;
    set_dir_mode(path)
}

#[cfg(unix)]
fn create_new(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .io_context(|| format!("Failed to create `{}`", path.display()))
}

#[cfg(not(unix))]
fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .io_context(|| format!("Failed to create `{}`", path.display()))
}

/// Keeps the permission bits minus setuid/setgid/sticky and group/other write, always
/// owner-readable so the runner can load the code.
#[cfg(unix)]
fn set_file_mode(file: &File, path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode((mode & 0o755) | 0o400))
        .io_context(|| format!("Failed to set the mode of `{}`", path.display()))
}

#[cfg(not(unix))]
fn set_file_mode(_file: &File, _path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn set_dir_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .io_context(|| format!("Failed to set the mode of `{}`", path.display()))
}

#[cfg(not(unix))]
fn set_dir_mode(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn make_symlink(target: &str, path: &Path, _name: &str) -> Result<()> {
    std::os::unix::fs::symlink(target, path)
        .io_context(|| format!("Failed to create the symlink `{}`", path.display()))
}

#[cfg(not(unix))]
fn make_symlink(_target: &str, _path: &Path, name: &str) -> Result<()> {
    Err(refuse(name, "symlinks are not supported on this platform"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_are_normalised_or_refused() {
        assert_eq!(
            member_path("./a//b/c.py").unwrap(),
            Some(PathBuf::from("a/b/c.py"))
        );
        assert_eq!(member_path("./").unwrap(), None);
        for bad in [
            "../x",
            "a/../../x",
            "a/..",
            "/etc/passwd",
            "C:\\x",
            "c:x",
            "a\\..\\x",
        ] {
            assert!(member_path(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn chained_links_are_resolved_through_each_other() {
        let mut links = BTreeMap::new();
        links.insert(
            PathBuf::from("d/up"),
            ("..".to_string(), "d/up".to_string()),
        );
        assert!(matches!(
            resolve_through_links(&links, vec![], "d/up/.."),
            Resolution::Escapes
        ));
        assert!(matches!(
            resolve_through_links(&links, vec![], "d/up/d"),
            Resolution::Inside
        ));
        links.insert(PathBuf::from("a"), ("b".to_string(), "a".to_string()));
        links.insert(PathBuf::from("b"), ("a".to_string(), "b".to_string()));
        assert!(matches!(
            resolve_through_links(&links, vec![], "a"),
            Resolution::Loops
        ));
    }
}
